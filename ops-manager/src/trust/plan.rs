//! What the CA bundle holds and when an issuer change may re-issue, decided from facts alone.
//!
//! The servers of a database read one CA file, the bundle. It holds the server Secret's CA; an
//! issuer change widens it before any leaf moves: a probe certificate is issued from the new
//! issuer (its `ca.crt` is the new CA), the bundle gets the new CA next to the old one, every pod
//! reloads until it accepts the probe's certificate, and only then are the Certificates moved to
//! the new issuer. Once every pod serves the re-issued certificate the bundle is narrowed to
//! the current CA and the probe is deleted. A CA change nobody announced (the issuer's own CA
//! replaced) widens the bundle after the fact, and narrows it the same way.

pub use crate::serving::trust::{PodsTrust, Serial};

/// The probe certificate's Secret, as issued by the wanted issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Not issued (yet) by the wanted issuer.
    NotIssued,
    /// Issued without `ca.crt` (an ACME issuer): the new CA cannot be trusted in advance.
    NoCa,
    Issued(Serial),
}

/// Everything the decision needs, observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustFacts {
    /// The CA in the server Secret; None before it is issued, or for an issuer that gives none.
    pub current: Option<Serial>,
    /// The bundle Secret's CAs; None while it does not exist.
    pub bundle: Option<Vec<Serial>>,
    /// Some Certificate of the database, or the server Secret, is still from another issuer
    /// than `spec.tls` names: an issuer change has not finished.
    pub switching: bool,
    /// The issuer `spec.tls` names exists and is ready (else its problem is said elsewhere and
    /// nothing is issued from it).
    pub issuer_ready: bool,
    pub probe: Probe,
    /// Whether the probe Certificate exists (to delete it once the change is over).
    pub probe_exists: bool,
    /// None: the pods cannot be asked (no pods, or an engine that is only restarted).
    pub pods_trust: Option<PodsTrust>,
    /// Every pod presents the server Secret's certificate (`TLSServing` True), or there are none.
    pub serving_current: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeAction {
    None,
    Create,
    Delete,
}

/// Why the Certificates stay on the issuer they have for now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    /// The probe certificate from the new issuer is not issued yet.
    LearningCa,
    /// The bundle now holds the new CA; pods have not all loaded it.
    PodsTrust(PodsTrust),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustPlan {
    /// Write the bundle with these CAs, in this order; None: leave it as it is.
    pub bundle: Option<Vec<Serial>>,
    pub probe: ProbeAction,
    /// Some: keep every live Certificate on its issuer for now.
    pub hold: Option<Hold>,
    /// Ask each pod whether it trusts the probe's CA, reloading those that do not.
    pub check_pods: bool,
}

pub fn plan(f: &TrustFacts) -> TrustPlan {
    let switch = f.switching && f.issuer_ready && f.pods_trust.is_some();
    let probe = match (switch, f.probe_exists) {
        (true, false) => ProbeAction::Create,
        (false, true) => ProbeAction::Delete,
        _ => ProbeAction::None,
    };
    let mut trusted = f
        .bundle
        .clone()
        .or_else(|| f.current.clone().map(|c| vec![c]));
    let mut hold = None;
    let mut check_pods = false;
    if switch {
        match (&f.probe, f.pods_trust) {
            (Probe::NotIssued, _) => hold = Some(Hold::LearningCa),
            (Probe::NoCa, _) | (Probe::Issued(_), None) => {}
            (Probe::Issued(new), Some(pods)) => {
                if let Some(list) = trusted.as_mut().filter(|l| !l.contains(new)) {
                    list.push(new.clone());
                }
                if pods.trusting < pods.pods || !f.bundle.as_ref().is_some_and(|b| b.contains(new))
                {
                    hold = Some(Hold::PodsTrust(pods));
                    check_pods = true;
                }
            }
        }
    }
    if let (Some(current), Some(list)) = (&f.current, trusted.as_mut()) {
        if !list.contains(current) {
            // A CA change nobody announced: trust both until every pod serves the new one.
            list.insert(0, current.clone());
        } else if !f.switching && f.serving_current {
            *list = vec![current.clone()];
        }
    }
    TrustPlan {
        bundle: trusted.filter(|t| Some(t) != f.bundle.as_ref()),
        probe,
        hold,
        check_pods,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(serial: &str) -> Serial {
        serial.to_string()
    }

    fn settled() -> TrustFacts {
        TrustFacts {
            current: Some(s("OLD")),
            bundle: Some(vec![s("OLD")]),
            switching: false,
            issuer_ready: true,
            probe: Probe::NotIssued,
            probe_exists: false,
            pods_trust: Some(PodsTrust {
                trusting: 0,
                pods: 3,
            }),
            serving_current: true,
        }
    }

    fn switching(probe: Probe, trusting: usize) -> TrustFacts {
        TrustFacts {
            switching: true,
            probe,
            probe_exists: true,
            pods_trust: Some(PodsTrust { trusting, pods: 3 }),
            ..settled()
        }
    }

    #[test]
    fn decisions() {
        let quiet = TrustPlan {
            bundle: None,
            probe: ProbeAction::None,
            hold: None,
            check_pods: false,
        };
        let cases: Vec<(&str, TrustFacts, TrustPlan)> = vec![
            ("settled: nothing to write", settled(), quiet.clone()),
            (
                "no server Secret yet: no bundle to write",
                TrustFacts {
                    current: None,
                    bundle: None,
                    ..settled()
                },
                quiet.clone(),
            ),
            (
                "first issuance: the bundle is the server Secret's CA",
                TrustFacts {
                    bundle: None,
                    ..settled()
                },
                TrustPlan {
                    bundle: Some(vec![s("OLD")]),
                    ..quiet.clone()
                },
            ),
            (
                "an issuer change begins: the probe is issued first, the Certificates wait",
                TrustFacts {
                    probe_exists: false,
                    ..switching(Probe::NotIssued, 0)
                },
                TrustPlan {
                    probe: ProbeAction::Create,
                    hold: Some(Hold::LearningCa),
                    ..quiet.clone()
                },
            ),
            (
                "the probe is issued: the bundle holds both CAs, pods are asked",
                switching(Probe::Issued(s("NEW")), 0),
                TrustPlan {
                    bundle: Some(vec![s("OLD"), s("NEW")]),
                    hold: Some(Hold::PodsTrust(PodsTrust {
                        trusting: 0,
                        pods: 3,
                    })),
                    check_pods: true,
                    ..quiet.clone()
                },
            ),
            (
                "two of three pods trust the new CA: still held",
                TrustFacts {
                    bundle: Some(vec![s("OLD"), s("NEW")]),
                    ..switching(Probe::Issued(s("NEW")), 2)
                },
                TrustPlan {
                    hold: Some(Hold::PodsTrust(PodsTrust {
                        trusting: 2,
                        pods: 3,
                    })),
                    check_pods: true,
                    ..quiet.clone()
                },
            ),
            (
                "every pod trusts the new CA: the Certificates move; both CAs stay",
                TrustFacts {
                    bundle: Some(vec![s("OLD"), s("NEW")]),
                    ..switching(Probe::Issued(s("NEW")), 3)
                },
                quiet.clone(),
            ),
            (
                "re-issued from the new CA, pods not all serving it yet: both CAs stay",
                TrustFacts {
                    current: Some(s("NEW")),
                    bundle: Some(vec![s("OLD"), s("NEW")]),
                    probe_exists: true,
                    serving_current: false,
                    ..settled()
                },
                TrustPlan {
                    probe: ProbeAction::Delete,
                    ..quiet.clone()
                },
            ),
            (
                "every pod serves the re-issued certificate: the old CA is dropped",
                TrustFacts {
                    current: Some(s("NEW")),
                    bundle: Some(vec![s("OLD"), s("NEW")]),
                    ..settled()
                },
                TrustPlan {
                    bundle: Some(vec![s("NEW")]),
                    ..quiet.clone()
                },
            ),
            (
                "the Secret changed CA unannounced: both trusted until pods serve it",
                TrustFacts {
                    current: Some(s("NEW")),
                    serving_current: false,
                    ..settled()
                },
                TrustPlan {
                    bundle: Some(vec![s("NEW"), s("OLD")]),
                    ..quiet.clone()
                },
            ),
            (
                "an issuer without a CA (ACME): nothing to trust in advance, no hold",
                switching(Probe::NoCa, 0),
                quiet.clone(),
            ),
            (
                "the new issuer is missing or not ready: no probe (IssuerReady says why)",
                TrustFacts {
                    issuer_ready: false,
                    probe_exists: false,
                    ..switching(Probe::NotIssued, 0)
                },
                quiet.clone(),
            ),
            (
                "no pods to ask: no probe, no hold",
                TrustFacts {
                    pods_trust: None,
                    probe_exists: false,
                    ..switching(Probe::NotIssued, 0)
                },
                quiet.clone(),
            ),
            (
                "the new issuer has the same CA: nothing to widen, pods already trust it",
                TrustFacts {
                    ..switching(Probe::Issued(s("OLD")), 3)
                },
                quiet.clone(),
            ),
            (
                "switching, serving the old certificate: the bundle is not narrowed",
                TrustFacts {
                    bundle: Some(vec![s("OLD"), s("NEW")]),
                    ..switching(Probe::Issued(s("NEW")), 3)
                },
                quiet,
            ),
        ];
        for (name, facts, want) in cases {
            assert_eq!(plan(&facts), want, "{name}");
        }
    }
}
