//! What each engine offers for a renewed certificate: where it presents its certificate, and
//! how it is told to read the files again without a restart, if it can be.
use dbtls_contract::DbKind;

/// ProxySQL's admin interface, where `PROXYSQL RELOAD TLS` is run.
pub const PROXYSQL_ADMIN_PORT: u16 = 6032;
/// Galera's replication port (TLS from the first byte when `socket.ssl` is on).
pub const GALERA_PORT: u16 = 4567;

/// How a server takes a renewed certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// Run these statements over the admin protocol (MySQL protocol) on `port`.
    Reload {
        port: u16,
        statements: Vec<&'static str>,
    },
    /// Only a restart makes the server read its certificate again.
    Restart { why: &'static str },
}

/// Where a pod presents its certificate to clients, if this operator can look.
pub fn probe_port(kind: DbKind) -> Option<u16> {
    match kind {
        // SQL Server's TLS lives inside TDS pre-login packets: no probe here; a pod that
        // started after the certificate was issued is taken to serve it.
        DbKind::MSSQLServer => None,
        _ => u16::try_from(kind.profile().port).ok(),
    }
}

/// How `kind` reloads, given the version string its server announced (the MySQL greeting):
/// MariaDB images answer to `FLUSH SSL`, MySQL from 8.0.16 to `ALTER INSTANCE RELOAD TLS`.
pub fn method(kind: DbKind, server_version: Option<&str>) -> Method {
    let port = probe_port(kind).unwrap_or_default();
    let mysql_reload = |version: Option<&str>| -> Result<&'static str, &'static str> {
        match version {
            Some(v) if v.contains("MariaDB") => Ok("FLUSH SSL"),
            Some(v) if mysql_before_8_0_16(v) => {
                Err("MySQL before 8.0.16 cannot reload its certificate")
            }
            _ => Ok("ALTER INSTANCE RELOAD TLS"),
        }
    };
    match kind {
        DbKind::MySQL => match mysql_reload(server_version) {
            Ok(statement) => Method::Reload {
                port,
                statements: vec![statement],
            },
            Err(why) => Method::Restart { why },
        },
        DbKind::PerconaXtraDB => match mysql_reload(server_version) {
            Ok(statement) => Method::Reload {
                port,
                // Galera's replication socket has its own TLS context.
                statements: vec![
                    statement,
                    "SET GLOBAL wsrep_provider_options='socket.ssl_reload=1'",
                ],
            },
            Err(why) => Method::Restart { why },
        },
        DbKind::ProxySQL => Method::Reload {
            port: PROXYSQL_ADMIN_PORT,
            statements: vec!["PROXYSQL RELOAD TLS"],
        },
        DbKind::Singlestore => Method::Reload {
            port,
            statements: vec!["SSL_RELOAD"],
        },
        DbKind::MSSQLServer => Method::Restart {
            why: "SQL Server reads its certificate only at start",
        },
    }
}

/// Whether a MySQL version string (`5.7.44-log`, `8.0.15`) is older than 8.0.16.
fn mysql_before_8_0_16(version: &str) -> bool {
    let numbers: Vec<u32> = version
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    match numbers.as_slice() {
        [major, minor, patch] => (*major, *minor, *patch) < (8, 0, 16),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_engine_reloads_its_own_way() {
        let cases: [(DbKind, Option<&str>, Method); 8] = [
            (
                DbKind::MySQL,
                Some("10.11.18-MariaDB-0+deb12u1"),
                Method::Reload {
                    port: 3306,
                    statements: vec!["FLUSH SSL"],
                },
            ),
            (
                DbKind::MySQL,
                Some("8.4.3"),
                Method::Reload {
                    port: 3306,
                    statements: vec!["ALTER INSTANCE RELOAD TLS"],
                },
            ),
            (
                DbKind::MySQL,
                Some("5.7.44-log"),
                Method::Restart {
                    why: "MySQL before 8.0.16 cannot reload its certificate",
                },
            ),
            (
                DbKind::MySQL,
                Some("8.0.15"),
                Method::Restart {
                    why: "MySQL before 8.0.16 cannot reload its certificate",
                },
            ),
            (
                DbKind::PerconaXtraDB,
                Some("8.0.40-31.1"),
                Method::Reload {
                    port: 3306,
                    statements: vec![
                        "ALTER INSTANCE RELOAD TLS",
                        "SET GLOBAL wsrep_provider_options='socket.ssl_reload=1'",
                    ],
                },
            ),
            (
                DbKind::ProxySQL,
                None,
                Method::Reload {
                    port: 6032,
                    statements: vec!["PROXYSQL RELOAD TLS"],
                },
            ),
            (
                DbKind::Singlestore,
                Some("8.7.10"),
                Method::Reload {
                    port: 3306,
                    statements: vec!["SSL_RELOAD"],
                },
            ),
            (
                DbKind::MSSQLServer,
                None,
                Method::Restart {
                    why: "SQL Server reads its certificate only at start",
                },
            ),
        ];
        for (kind, version, expected) in cases {
            assert_eq!(method(kind, version), expected, "{kind:?} {version:?}");
        }
    }

    #[test]
    fn sql_server_is_not_probed_and_the_others_on_their_client_port() {
        assert_eq!(probe_port(DbKind::MSSQLServer), None);
        assert_eq!(probe_port(DbKind::ProxySQL), Some(6033));
        assert_eq!(probe_port(DbKind::MySQL), Some(3306));
    }
}
