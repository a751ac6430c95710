// The extern "C" surface of the Verilated pipeline, used by src/ffi.rs.
// Clocking: inputs are set, then one full clock (low, eval, high, eval);
// the pipeline's outputs are registered, so they are read after the edge.
#include <cstdint>
#include <cstring>
#include "Vtop.h"
#include "verilated.h"

struct StmModel {
    VerilatedContext ctx;
    Vtop* top;
    uint64_t cycles;
};

static void tick(StmModel* m) {
    m->top->clock = 0;
    m->top->eval();
    m->top->clock = 1;
    m->top->eval();
    m->cycles++;
}

extern "C" {

StmModel* stm_new() {
    StmModel* m = new StmModel();
    m->top = new Vtop{&m->ctx};
    m->cycles = 0;
    m->top->clock = 0;
    m->top->in_valid = 0;
    m->top->cfg_we = 0;
    m->top->dump_en = 0;
    m->top->eval();
    return m;
}

void stm_free(StmModel* m) {
    m->top->final();
    delete m->top;
    delete m;
}

uint64_t stm_cycles(const StmModel* m) { return m->cycles; }

uint16_t stm_caps(StmModel* m) {
    m->top->eval();
    return m->top->caps;
}

void stm_cfg(StmModel* m, uint16_t addr, uint64_t data) {
    m->top->cfg_we = 1;
    m->top->cfg_addr = addr;
    m->top->cfg_data = data;
    tick(m);
    m->top->cfg_we = 0;
}

// Reads n dump words; the pipeline must be idle.
void stm_dump(StmModel* m, const uint32_t* addrs, size_t n, uint64_t* out) {
    m->top->dump_en = 1;
    for (size_t i = 0; i < n; i++) {
        m->top->dump_addr = addrs[i];
        tick(m);
        out[i] = m->top->dump_data;
    }
    m->top->dump_en = 0;
    tick(m);
}

// Streams n ops (64 bytes each) one per clock, optionally with `gap` idle
// clocks between ops, collects the n results (16 bytes each) in order and
// drains the pipeline. Records the cycle (relative to the first op's input
// clock) at which each result appeared in `when` (if not null). Returns the
// clocks from the first op in to the last result out, or UINT64_MAX if a
// result went missing.
uint64_t stm_run(StmModel* m, const uint8_t* ops, size_t n, uint8_t* results,
                 uint64_t* when, uint32_t gap) {
    size_t sent = 0, got = 0;
    uint64_t clk = 0;
    uint32_t wait = 0;
    while (got < n) {
        if (sent < n && wait == 0) {
            m->top->in_valid = 1;
            for (int w = 0; w < 16; w++) {
                uint32_t v;
                std::memcpy(&v, ops + sent * 64 + w * 4, 4);
                m->top->in_op[w] = v;
            }
            sent++;
            wait = gap;
        } else {
            m->top->in_valid = 0;
            if (wait > 0) wait--;
        }
        tick(m);
        clk++;
        if (m->top->out_valid) {
            for (int w = 0; w < 4; w++) {
                uint32_t v = m->top->out_result[w];
                std::memcpy(results + got * 16 + w * 4, &v, 4);
            }
            if (when) when[got] = clk;
            got++;
        }
        if (clk > (uint64_t)n * (gap + 1) + 64) return UINT64_MAX;
    }
    m->top->in_valid = 0;
    return clk;
}

}  // extern "C"
