//! Key generation and distribution.
//!
//! Layout, all Z85 text files (see [`streamon_bus::curve`]):
//!
//! - the controller's pair: `ctl-keys/controller.key` (secret, 0600) and
//!   `ctl-keys/controller.pub`;
//! - the probes the controller admits: one `NAME.pub` per probe in an
//!   *authorised* directory (`ctl-keys/probes/`);
//! - a probe's bundle, copied to the probe host: `NAME.key`, `NAME.pub`
//!   and the controller's `controller.pub`.
//!
//! [`provision`] makes a probe's bundle and authorises it in one step;
//! secret keys are created with mode 0600 and never overwritten.

use std::fs;
use std::path::{Path, PathBuf};

use streamon_bus::curve::{self, KeyPair};

use crate::{proto, CtlError};

/// Generates `dir/NAME.key` and `dir/NAME.pub` (refuses to overwrite).
pub fn generate(dir: &Path, name: &str) -> Result<KeyPair, CtlError> {
    proto::check_name(name).map_err(|e| CtlError::Config(format!("key name {e}")))?;
    fs::create_dir_all(dir).map_err(|e| CtlError::Store {
        path: dir.to_path_buf(),
        source: e,
    })?;
    Ok(curve::keygen(dir, name)?)
}

/// Admits a public key: checks it is a key and writes it as
/// `authorized/NAME.pub`. Returns the written path.
pub fn authorize(authorized: &Path, name: &str, public: &Path) -> Result<PathBuf, CtlError> {
    proto::check_name(name).map_err(|e| CtlError::Config(format!("key name {e}")))?;
    let key = curve::read_key(public)?;
    fs::create_dir_all(authorized).map_err(|e| CtlError::Store {
        path: authorized.to_path_buf(),
        source: e,
    })?;
    let path = authorized.join(format!("{name}.pub"));
    fs::write(&path, format!("{}\n", curve::z85(&key))).map_err(|e| CtlError::Store {
        path: path.clone(),
        source: e,
    })?;
    Ok(path)
}

/// Every `*.pub` key of an authorised directory, sorted by file name.
pub fn read_authorized(authorized: &Path) -> Result<Vec<[u8; 32]>, CtlError> {
    let io = |e| CtlError::Store {
        path: authorized.to_path_buf(),
        source: e,
    };
    let mut paths: Vec<PathBuf> = fs::read_dir(authorized)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pub"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| curve::read_key(p).map_err(CtlError::from))
        .collect()
}

/// Makes probe `probe`'s bundle in `out` (its key pair and the
/// controller's public key, read from `controller_pub`) and authorises its
/// public key in `authorized`.
pub fn provision(
    controller_pub: &Path,
    authorized: &Path,
    probe: &str,
    out: &Path,
) -> Result<KeyPair, CtlError> {
    let controller = curve::read_key(controller_pub)?;
    let pair = generate(out, probe)?;
    let dest = out.join("controller.pub");
    fs::write(&dest, format!("{}\n", curve::z85(&controller))).map_err(|e| CtlError::Store {
        path: dest,
        source: e,
    })?;
    authorize(authorized, probe, &out.join(format!("{probe}.pub")))?;
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provision_makes_a_bundle_and_authorises_it() {
        let d = tempfile::tempdir().unwrap();
        let ctl = generate(&d.path().join("ctl"), "controller").unwrap();
        let auth = d.path().join("ctl/probes");
        let p = provision(
            &d.path().join("ctl/controller.pub"),
            &auth,
            "p1",
            &d.path().join("p1"),
        )
        .unwrap();
        assert_eq!(
            curve::read_key(&d.path().join("p1/controller.pub")).unwrap(),
            ctl.public
        );
        assert_eq!(curve::read_keypair(&d.path().join("p1"), "p1").unwrap(), p);
        assert_eq!(read_authorized(&auth).unwrap(), vec![p.public]);
        // Never overwrites a secret key.
        assert!(generate(&d.path().join("p1"), "p1").is_err());
        // Refuses what is not a key.
        fs::write(d.path().join("junk.pub"), "not a key").unwrap();
        assert!(authorize(&auth, "junk", &d.path().join("junk.pub")).is_err());
        assert!(generate(d.path(), "../escape").is_err());
    }
}
