//! Settings musubi reads from Serf's flags and config files but has no use for: each one
//! given is named in a warning at start (`==> Warning: ...`), so none is ignored silently.
//! docs/agent-config.md lists them with the reason.

use super::layer::ConfigLayer;
use std::time::Duration;

/// The only Serf protocol musubi speaks, as Serf 0.8 numbers its newest.
const SPOKEN_PROTOCOL: i64 = 5;
/// Serf's default `broadcast_timeout`.
const DEFAULT_BROADCAST_TIMEOUT: Duration = Duration::from_secs(5);

/// The warnings for what the merged layer sets that musubi does not act on.
pub fn warnings(layer: &ConfigLayer) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(protocol) = layer.protocol.filter(|&p| p > 0 && p != SPOKEN_PROTOCOL) {
        warnings.push(format!(
            "Warning: 'protocol' {protocol} is not used: musubi speaks one gossip protocol, \
             which Serf's clients see as {SPOKEN_PROTOCOL}"
        ));
    }
    if layer
        .broadcast_timeout
        .is_some_and(|t| t != DEFAULT_BROADCAST_TIMEOUT)
    {
        warnings.push(
            "Warning: 'broadcast_timeout' is not used: musubi tells each member of a leave \
             directly and waits for no broadcast"
                .to_string(),
        );
    }
    if layer.enable_compression.is_some() {
        warnings.push(
            "Warning: 'enable_compression' is not used (nor by Serf): only \
             -disable-compression decides"
                .to_string(),
        );
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_settings_given_and_unused_are_named() {
        assert!(warnings(&ConfigLayer::default()).is_empty());
        let spoken = ConfigLayer {
            protocol: Some(5),
            broadcast_timeout: Some(DEFAULT_BROADCAST_TIMEOUT),
            ..ConfigLayer::default()
        };
        assert!(warnings(&spoken).is_empty());
        let unused = ConfigLayer {
            protocol: Some(3),
            broadcast_timeout: Some(Duration::from_secs(1)),
            enable_compression: Some(true),
            ..ConfigLayer::default()
        };
        let named: Vec<String> = warnings(&unused);
        assert_eq!(named.len(), 3, "{named:?}");
        assert!(named[0].starts_with("Warning: 'protocol' 3 is not used"));
        assert!(named[1].starts_with("Warning: 'broadcast_timeout' is not used"));
        assert!(named[2].starts_with("Warning: 'enable_compression' is not used"));
    }
}
