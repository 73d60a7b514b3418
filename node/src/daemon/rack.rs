//! The node's rack: a label from `--rack`, checked, or its subnet (`--rack-subnet`).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};

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

/// This node's rack from its subnet: the `bits`-long prefix of the address it reaches the hub
/// from (the route is looked up; no packet is sent). Every node of the farm gives the same
/// `bits`, so the nodes of one rack subnet name the same rack.
pub(super) fn from_subnet(hub_url: &str, bits: u8) -> Result<Rack> {
    let hub = hub_address(hub_url)?;
    let unspecified: SocketAddr = if hub.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let local = UdpSocket::bind(unspecified)
        .and_then(|s| s.connect(hub).and_then(|()| s.local_addr()))
        .map_err(|e| {
            Error::new(format!(
                "cannot find the address this node reaches the hub {hub} from ({e}), so --rack-subnet cannot name its rack; give --rack instead"
            ))
        })?;
    let label = subnet(local.ip(), bits)?;
    Rack::from_label(&label).ok_or_else(|| {
        Error::new(format!(
            "--rack-subnet gave an empty rack label for {local}"
        ))
    })
}

/// `ip`'s subnet of prefix length `bits`, as a rack label like `subnet:10.1.2.0/24`.
fn subnet(ip: IpAddr, bits: u8) -> Result<String> {
    let net = match ip {
        IpAddr::V4(v4) if (1..=32).contains(&bits) => {
            IpAddr::from((u32::from(v4) & (u32::MAX << (32 - u32::from(bits)))).to_be_bytes())
        }
        IpAddr::V6(v6) if (1..=128).contains(&bits) => {
            IpAddr::from((u128::from(v6) & (u128::MAX << (128 - u32::from(bits)))).to_be_bytes())
        }
        _ => {
            return Err(Error::new(format!(
                "--rack-subnet {bits} is not a prefix length for {ip}; give 1 to 32 for IPv4 (1 to 128 for IPv6), e.g. 26 for racks of a /26 each"
            )));
        }
    };
    Ok(format!("subnet:{net}/{bits}"))
}

/// The hub's socket address, from its `http://host[:port]/…` URL (resolved once).
fn hub_address(url: &str) -> Result<SocketAddr> {
    let (authority, port) = crate::hub::client::authority(url)?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let with_port = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:{port}")
    } else {
        authority.to_string()
    };
    with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            Error::new(format!(
                "cannot resolve the hub's host in '{url}', so --rack-subnet cannot name this node's rack; check --hub or give --rack"
            ))
        })
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

    #[test]
    fn nodes_of_one_subnet_name_one_rack() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(subnet(ip("10.1.2.77"), 26).unwrap(), "subnet:10.1.2.64/26");
        assert_eq!(subnet(ip("10.1.2.70"), 26).unwrap(), "subnet:10.1.2.64/26");
        assert_eq!(
            subnet(ip("10.1.2.130"), 26).unwrap(),
            "subnet:10.1.2.128/26"
        );
        assert_eq!(subnet(ip("10.1.2.3"), 32).unwrap(), "subnet:10.1.2.3/32");
        assert_eq!(subnet(ip("fd00::1:2"), 64).unwrap(), "subnet:fd00::/64");
        for bits in [0, 33] {
            let err = subnet(ip("10.0.0.1"), bits).unwrap_err().to_string();
            assert!(
                err.starts_with("--rack-subnet ") && err.contains("prefix"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_subnet_is_the_one_the_hub_is_reached_from() {
        let a = from_subnet("http://127.0.0.1:8080/v1", 8).unwrap();
        assert_eq!(Some(a), Rack::from_label("subnet:127.0.0.0/8"));
        assert_eq!(hub_address("https://127.0.0.1").unwrap().port(), 443);
        assert_eq!(hub_address("http://[::1]:81/x").unwrap().port(), 81);
        assert!(hub_address("ftp://h").is_err());
    }
}
