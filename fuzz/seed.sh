#!/usr/bin/env bash
# Builds a small seed corpus for every fuzz target in fuzz/corpus/TARGET
# (git-ignored) from what the project ships: the apps, small real captures
# from ../shared/traces, and messages in each format taken from the
# crates' own tests and docs. Safe to re-run; it only adds files.
#
#   cd fuzz && ./seed.sh && cargo +nightly fuzz run app_parser -- -max_total_time=300
set -euo pipefail
cd "$(dirname "$0")"
root=..
traces=$root/../shared/traces
c=corpus
mkdir -p $c/{app_parser,packet_parser,pcap_reader,bus_wire,control_proto,resp_parser,bpf_filter,app_payloads,ctl_http,capture_block,curve_key,ctl_store}

# app_parser: the shipped applications and the language test programs.
cp $root/apps/*.xml $c/app_parser/
find $root/lang/tests -name '*.xml' -size -8k -exec cp {} $c/app_parser/ \; 2>/dev/null || true

# pcap_reader: small real captures (pcap and pcapng).
small="bss_port_scan.pcap ndpi_dns.pcap sv_dns_rcode.pcap sv_nxdomain_soa.pcap ndpi_tcp_scan.pcapng dstreamon_port_scan.pcap"
for t in $small; do
  [ -f "$traces/$t" ] && cp "$traces/$t" $c/pcap_reader/
done

# packet_parser and app_payloads: the frames of the small classic pcaps,
# one file each (and for app_payloads, their UDP/TCP payloads).
python3 - "$traces" $c/packet_parser $c/app_payloads <<'PY'
import os, struct, sys
traces, out, payloads = sys.argv[1:4]
for name in ["bss_port_scan.pcap", "ndpi_dns.pcap", "sv_dns_rcode.pcap",
             "sv_nxdomain_soa.pcap", "dstreamon_port_scan.pcap", "zeek_wikipedia.pcap"]:
    path = os.path.join(traces, name)
    if not os.path.exists(path):
        continue
    data = open(path, "rb").read()
    magic = data[:4]
    e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack(e + "I", data[20:24])[0]
    off, n = 24, 0
    while off + 16 <= len(data) and n < 12:
        incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        n += 1
        if linktype != 1:
            continue
        open(os.path.join(out, f"{name}.{n}"), "wb").write(frame)
        # Ethernet / IPv4 / UDP or TCP payload, for the DNS, HTTP and
        # Modbus parsers.
        if len(frame) > 34 and frame[12:14] == b"\x08\x00":
            ihl = (frame[14] & 15) * 4
            proto = frame[23]
            l4 = frame[14 + ihl:]
            if proto == 17 and len(l4) > 8:
                open(os.path.join(payloads, f"{name}.{n}"), "wb").write(l4[8:])
            elif proto == 6 and len(l4) > 20:
                p = l4[(l4[12] >> 4) * 4:]
                if p:
                    open(os.path.join(payloads, f"{name}.{n}"), "wb").write(p)
PY
printf 'GET /index.html HTTP/1.1\r\nHost: example.org\r\nUser-Agent: seed\r\n\r\n' > $c/app_payloads/http_get
printf '\x00\x01\x00\x00\x00\x06\x11\x03\x00\x6b\x00\x03' > $c/app_payloads/modbus_read

# bus_wire: first byte = topic length, then topic, then payload.
bus() { printf '%b' "\\x$(printf %02x ${#1})$1" > "$c/bus_wire/$3"; printf '%s' "$2" >> "$c/bus_wire/$3"; }
bus alert '1700000000123456789 probe1 A1 LOW "DNS \"hijack\" \\ suspected" nxd_count=17.000000 ratio=0.500000' text_line
bus alert '{"v":1,"probe":"probe1","app":"dns","topic":"alert","key":"10.0.0.1","key_fields":{"ip_src":"10.0.0.1"},"state_from":"normal","state_to":"suspect","code":"A1","level":"LOW","text":"DNS \"hijack\" \\ suspected","features":{"nxd_count":17.0,"ratio":0.5},"ts":1700000000123456789,"event":"packet:0","packet_no":42,"seq":7}' json
bus log '{"v":1,"probe":"p","app":"a","topic":"log","key":"","state_from":"","state_to":"","code":"","level":"","text":"","features":{"nan":"NaN","pinf":"inf","ninf":"-inf"},"ts":1,"event":"timeout","packet_no":0,"seq":0}' json_nonfinite
bus raw "$(printf 'E\x10\x01\x14')" raw

# control_proto: one message of each kind.
cp_() { printf '%s' "$2" > "$c/control_proto/$1"; }
cp_ deploy '{"v":1,"type":"deploy","nonce":7,"app":"portscan","xml":"<streamon/>"}'
cp_ swap '{"v":1,"type":"swap","nonce":8,"app":"portscan","xml":"<streamon/>"}'
cp_ start '{"v":1,"type":"start","nonce":9,"app":"portscan"}'
cp_ status '{"v":1,"type":"status","nonce":10}'
cp_ refuse '{"v":1,"type":"refuse","nonce":7,"command":"deploy","reason":"replayed","detail":"nonce 7 is not greater than 9"}'
cp_ refuse_null '{"v":1,"type":"refuse","nonce":null,"command":null,"reason":"quota","detail":""}'
cp_ heartbeat '{"v":1,"type":"heartbeat","probe":"p1","seq":3,"events_endpoint":"tcp://10.0.0.2:5560","apps":[{"name":"ddos","digest":"af63f54c86021707","running":true}],"last_nonce":7,"packets":10,"events":2,"refused":0}'
cp_ announce '{"v":1,"type":"announce","probe":"p1","seq":0,"events_endpoint":"tcp://10.0.0.2:5560","apps":[],"last_nonce":0,"packets":0,"events":0,"refused":0}'
cp_ welcome '{"v":1,"type":"welcome","controller":"ctl","heartbeat_ms":500}'
cp_ ack '{"v":1,"type":"ack","probe":"p1","nonce":7,"command":"deploy","detail":"","apps":[{"name":"portscan","digest":"af63f54c86021707","running":true}]}'

# resp_parser: what redis-cli and the dashboard send.
printf '*2\r\n$3\r\nGET\r\n$29\r\nstreamon:p:ip:192.0.2.1:bytes\r\n' > $c/resp_parser/get
printf '*2\r\n$7\r\nHGETALL\r\n$24\r\nstreamon:p:app:a:state:k\r\n*1\r\n$4\r\nPING\r\n' > $c/resp_parser/hgetall_ping
printf 'KEYS streamon:*\r\nINFO\r\nSCAN 0 MATCH * COUNT 10\r\n' > $c/resp_parser/inline
printf '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n' > $c/resp_parser/set

# bpf_filter: tcpdump -ddd and -dd output for 'tcp or udp port 53'.
printf '4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n' > $c/bpf_filter/ddd
printf '{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 1, 0x00000800 },\n{ 0x6, 0, 0, 0x00040000 },\n{ 0x6, 0, 0, 0x00000000 },\n' > $c/bpf_filter/dd

# ctl_http: requests the dashboard and the CLI send.
printf 'GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' > $c/ctl_http/state
printf 'GET /api/events?from=3&limit=10 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' > $c/ctl_http/events
post() { printf 'POST /api/%s HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s' "$1" "${#2}" "$2" > "$c/ctl_http/$1"; }
post deploy '{"probe":"p1","app":"portscan","xml":"<streamon/>"}'
post status '{"probe":"p1"}'
post stop '{"probe":"p1","app":"portscan"}'

# curve_key: a key file as `streamon-ctl keys` writes it.
printf 'rq:rM>}U?@Lns47E1%%kR.o@n%%FcmmsL/@{H8]yf7\n' > $c/curve_key/pub

# capture_block: TPACKET_V3 blocks as the kernel fills them: a 48-byte
# descriptor, then records of a 48-byte header, 16 bytes of headroom and
# the frame; one plain, one with an offloaded VLAN tag to restore.
python3 - $c/capture_block <<'PY'
import struct, sys
out = sys.argv[1]
frame = bytes(range(60))
def block(status, n):
    desc = struct.pack("<IIIII", 1, 0, 1, n, 48).ljust(48, b"\0")
    recs = b""
    for i in range(n):
        nxt = 0 if i == n - 1 else 48 + 16 + len(frame) + 4
        hdr = struct.pack("<IIIIII", nxt, 1700000000, 5, len(frame), len(frame), status)
        hdr += struct.pack("<HH", 64, 0) + b"\0" * 4 + struct.pack("<IHH", 42, 0x8100, 0)
        recs += hdr.ljust(48, b"\0") + b"\0" * 16 + frame + b"\0" * 4
    return desc + recs
open(f"{out}/plain", "wb").write(block(1, 2))
open(f"{out}/vlan", "wb").write(block(1 | 16 | 64, 1))
PY
# ctl_store: an events.jsonl as the controller writes it, and one whose
# last line a crash cut.
ev() { printf '{"id":%d,"received_ms":1764400000000,"probe":"p1","app":"dns","topic":"%s","key":"10.0.0.1","code":"A1","level":"LOW","text":"NXDOMAIN é","state_to":"suspect","ts":1700000000123456789,"seq":%d,"features":{"nxd_count":17.0}}\n' "$1" "$2" "$1"; }
{ ev 1 alert; ev 2 log; ev 3 critical; } > $c/ctl_store/events
{ ev 1 alert; ev 2 log; ev 3 alert | head -c 60; } > $c/ctl_store/cut
echo "seeded: $(for d in $c/*; do printf '%s=%s ' "${d#$c/}" "$(ls $d | wc -l)"; done)"
