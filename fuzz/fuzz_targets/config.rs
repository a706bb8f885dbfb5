//! Fuzz target `config`: arbitrary text to `AgentConfig::from_toml`, then `validate`.
//!
//! Invariants checked (what `src/agent/settings.rs` promises):
//! - parsing, validating and printing any error never panic;
//! - a config that validates prints with `to_toml` (its `expect` says every validated
//!   field has a TOML form), and that text parses back to an equal config that
//!   validates too (what `--check-config` prints is a config file that means the same);
//! - its redacted form prints too, and its tags pass the wire's bounds;
//! - a validated dev-mode config yields a `MeshConfig` (`mesh_config`, which checks
//!   `MeshConfig::validate`): the module's invariant, which needs no key file in dev
//!   mode (outside it, the key files would be read from this machine's disk).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use muster::daemon::settings::AgentConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    let config = match AgentConfig::from_toml(text, path) {
        Ok(config) => config,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    if let Err(e) = config.validate() {
        let _ = e.to_string();
        return;
    }
    let printed = config.to_toml();
    let again = AgentConfig::from_toml(&printed, path)
        .unwrap_or_else(|e| panic!("its own TOML does not parse: {e}\n{printed}"));
    assert_eq!(again, config, "the round trip changed it:\n{printed}");
    if let Err(e) = again.validate() {
        panic!("the round trip no longer validates: {e}\n{printed}");
    }
    let _ = config.redacted().to_toml();
    config.tags().expect("validated tags pass the wire's bounds");
    let _ = (config.api_listen(), config.dns_listen());
    if config.dev {
        if let Err(e) = config.mesh_config(Vec::new(), 0) {
            panic!("a validated dev config has no mesh config: {e}\n{printed}");
        }
    }
});
