//! The node's rack: a label from `--rack`, checked.

use bootswarm_protocol::agent::Rack;

use crate::error::{Error, Result};

/// The longest `--rack` label.
const MAX_LABEL: usize = 64;

/// Checks a `--rack` label: up to [`MAX_LABEL`] printable ASCII characters.
pub(super) fn label(label: &str) -> Result<Option<Rack>> {
    if label.len() > MAX_LABEL || !label.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::new(format!(
            "--rack {label:?} is not a rack label; give at most {MAX_LABEL} printable characters without spaces, the same on every node of the rack"
        )));
    }
    Ok(Rack::from_label(label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rack_label_is_short_and_printable() {
        assert_eq!(
            label("row3-rack12").unwrap(),
            Rack::from_label("row3-rack12")
        );
        assert_eq!(label("").unwrap(), None);
        for bad in ["rack 1", "r\n", &"r".repeat(MAX_LABEL + 1)] {
            let err = label(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("--rack ") && err.contains("printable"),
                "{err}"
            );
        }
    }
}
