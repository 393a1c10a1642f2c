//! String `format`s that kube-apiserver checks on custom resources (go-openapi `strfmt`
//! as restricted by apiextensions). Unknown formats, and the numeric `int32`/`int64`/
//! `float`/`double` hints, are not checked, as in kube.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `value` is acceptable for `format`; `true` for formats kube does not check.
pub(crate) fn is_valid(format: &str, value: &str) -> bool {
    match format {
        "date-time" | "datetime" => is_date_time(value),
        "date" => chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok(),
        "byte" => is_base64(value),
        "uuid" => is_uuid(value),
        "ipv4" => value.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => value.parse::<Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(value),
        "hostname" => is_hostname(value),
        _ => true,
    }
}

/// RFC 3339 with or without the zone, as `strfmt.ParseDateTime` accepts.
fn is_date_time(value: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(value).is_ok()
        || chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
}

/// Standard, padded base64 (Go `base64.StdEncoding`, which skips CR and LF).
fn is_base64(value: &str) -> bool {
    let body: Vec<u8> = value
        .bytes()
        .filter(|b| *b != b'\r' && b'\n' != *b)
        .collect();
    if !body.len().is_multiple_of(4) {
        return false;
    }
    let padding = body.iter().rev().take_while(|b| **b == b'=').count();
    padding <= 2
        && body[..body.len() - padding]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

fn is_uuid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_cidr(value: &str) -> bool {
    let Some((addr, bits)) = value.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => bits <= 32,
        Ok(IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

/// RFC 1123 host name.
fn is_hostname(value: &str) -> bool {
    value.len() <= 255
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}
