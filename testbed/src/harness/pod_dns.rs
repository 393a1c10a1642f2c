//! Cluster DNS for the real-pods tier. The test node runs no CoreDNS, so pods that address
//! their peers by name (Galera's `<db>-N.<db>-pods.<ns>.svc`) are given this resolver through
//! their pod template (`dnsPolicy: None`, `dnsConfig.nameservers`). It answers A queries the way
//! CoreDNS's kubernetes plugin does for the names the databases use, from the API server at the
//! time of the query:
//! - `<hostname>.<subdomain>.<ns>.svc[.<domain>]`: the pod with that hostname and subdomain;
//! - `<service>.<ns>.svc[.<domain>]`: a headless Service's pods (not-ready ones too when it
//!   publishes them), another Service's cluster IP.
//!
//! Anything else is NXDOMAIN (pods reach nothing outside the node). One server per test process,
//! on its own thread so that it outlives the test that started it.
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Overrides the address the resolver listens on (default: the first address of the node's pod
/// CIDR, the CNI bridge's own address, which every pod reaches).
pub const POD_DNS_ENV: &str = "DBTLS_E2E_POD_DNS";
/// The test node's CNI bridge (its pods get 10.244.0.x), when the node has no `spec.podCIDR`.
const TEST_NODE_BRIDGE: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);
const CLUSTER_DOMAIN: &str = "cluster.local";
const TTL_SECONDS: u32 = 5;

static STARTED: OnceLock<Result<Ipv4Addr, String>> = OnceLock::new();

/// Starts the resolver once per process (idempotent) and returns the address pods use.
pub async fn ensure(kubeconfig: &Path) -> anyhow::Result<Ipv4Addr> {
    if let Some(started) = STARTED.get() {
        return started.clone().map_err(anyhow::Error::msg);
    }
    let client = client(kubeconfig).await?;
    let address = match std::env::var(POD_DNS_ENV) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .with_context(|| format!("{POD_DNS_ENV}={v:?}"))?,
        _ => bridge_address(&client).await?,
    };
    let kubeconfig = kubeconfig.to_path_buf();
    let result = STARTED.get_or_init(|| start(address, kubeconfig).map_err(|e| format!("{e:#}")));
    result.clone().map_err(anyhow::Error::msg)
}

async fn client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let config = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// The first address of the first node's pod CIDR (`10.244.0.0/24` → `10.244.0.1`).
async fn bridge_address(client: &kube::Client) -> anyhow::Result<Ipv4Addr> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let Some(cidr) = nodes
        .items
        .iter()
        .find_map(|n| n.spec.as_ref()?.pod_cidr.clone())
    else {
        return Ok(TEST_NODE_BRIDGE);
    };
    let network: Ipv4Addr = cidr
        .split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("pod CIDR {cidr:?}"))?;
    Ok(Ipv4Addr::from(u32::from(network) + 1))
}

fn start(address: Ipv4Addr, kubeconfig: PathBuf) -> anyhow::Result<Ipv4Addr> {
    let socket = UdpSocket::bind(SocketAddr::from((address, 53)))
        .with_context(|| format!("binding the pod resolver to {address}:53"))?;
    socket.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("pod-dns".to_string())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return eprintln!("pod resolver: {e}"),
            };
            if let Err(e) = runtime.block_on(serve(socket, kubeconfig)) {
                eprintln!("pod resolver stopped: {e:#}");
            }
        })?;
    Ok(address)
}

async fn serve(socket: UdpSocket, kubeconfig: PathBuf) -> anyhow::Result<()> {
    let socket = tokio::net::UdpSocket::from_std(socket)?;
    let client = client(&kubeconfig).await?;
    let mut buf = [0u8; 512];
    loop {
        let (len, peer) = socket.recv_from(&mut buf).await?;
        let Some(query) = Query::parse(&buf[..len]) else {
            continue;
        };
        let answer = if query.qtype == TYPE_A {
            resolve(&client, &query.name).await
        } else {
            // Known names have no other records; unknown ones do not exist either way.
            resolve(&client, &query.name).await.map(|_| Vec::new())
        };
        let reply = query.reply(answer.as_deref());
        // A lost reply is retried by the pod's resolver.
        let _ = socket.send_to(&reply, peer).await;
    }
}

/// The addresses of `name`, or None when it does not exist.
async fn resolve(client: &kube::Client, name: &str) -> Option<Vec<Ipv4Addr>> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let name = name
        .strip_suffix(&format!(".{CLUSTER_DOMAIN}"))
        .unwrap_or(&name);
    let labels: Vec<&str> = name.split('.').collect();
    match labels.as_slice() {
        [host, subdomain, ns, "svc"] => pod_address(client, ns, host, subdomain)
            .await
            .map(|ip| vec![ip]),
        [service, ns, "svc"] => service_addresses(client, ns, service).await,
        _ => None,
    }
}

async fn pod_address(
    client: &kube::Client,
    ns: &str,
    host: &str,
    subdomain: &str,
) -> Option<Ipv4Addr> {
    // StatefulSet pods are named after their hostname.
    let pod = Api::<Pod>::namespaced(client.clone(), ns)
        .get_opt(host)
        .await
        .ok()??;
    let spec = pod.spec.as_ref()?;
    let matches = spec.hostname.as_deref().unwrap_or(host) == host
        && spec.subdomain.as_deref() == Some(subdomain);
    if !matches {
        return None;
    }
    pod.status?.pod_ip?.parse().ok()
}

async fn service_addresses(client: &kube::Client, ns: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
    let service = Api::<Service>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()??;
    let spec = service.spec?;
    match spec.cluster_ip.as_deref() {
        Some(ip) if ip != "None" => return ip.parse().ok().map(|ip| vec![ip]),
        _ => {}
    }
    let selector = spec.selector.unwrap_or_default();
    let selector = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&selector))
        .await
        .ok()?;
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    Some(
        pods.items
            .iter()
            .filter_map(|p| p.status.as_ref())
            .filter(|s| publish_not_ready || is_ready(s))
            .filter_map(|s| s.pod_ip.as_deref()?.parse().ok())
            .collect(),
    )
}

fn is_ready(status: &k8s_openapi::api::core::v1::PodStatus) -> bool {
    status
        .conditions
        .as_ref()
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

/// One question of a DNS query (RFC 1035 §4.1).
#[derive(Debug, PartialEq)]
struct Query {
    id: u16,
    recursion_desired: bool,
    name: String,
    qtype: u16,
    /// The question section as received, echoed in the reply.
    question: Vec<u8>,
}

impl Query {
    fn parse(packet: &[u8]) -> Option<Query> {
        let header = packet.get(..12)?;
        let id = u16::from_be_bytes([header[0], header[1]]);
        let is_query = header[2] & 0x80 == 0;
        let questions = u16::from_be_bytes([header[4], header[5]]);
        if !is_query || questions != 1 {
            return None;
        }
        let mut at = 12;
        let mut labels = Vec::new();
        loop {
            let len = usize::from(*packet.get(at)?);
            at += 1;
            if len == 0 {
                break;
            }
            // Compression pointers never appear in a question we are sent first.
            if len > 63 {
                return None;
            }
            labels.push(String::from_utf8_lossy(packet.get(at..at + len)?).into_owned());
            at += len;
        }
        let fixed = packet.get(at..at + 4)?;
        Some(Query {
            id,
            recursion_desired: header[2] & 0x01 != 0,
            name: labels.join("."),
            qtype: u16::from_be_bytes([fixed[0], fixed[1]]),
            question: packet.get(12..at + 4)?.to_vec(),
        })
    }

    /// The reply: the addresses (an empty list: the name exists without such records) or
    /// NXDOMAIN.
    fn reply(&self, addresses: Option<&[Ipv4Addr]>) -> Vec<u8> {
        let answers = addresses.unwrap_or_default();
        let rcode = if addresses.is_some() { 0 } else { 3 };
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&self.id.to_be_bytes());
        // QR, authoritative, RD echoed; RA set so resolvers do not complain.
        out.push(0x84 | u8::from(self.recursion_desired));
        out.push(0x80 | rcode);
        let count = u16::try_from(answers.len()).unwrap_or(u16::MAX);
        for n in [1u16, count, 0, 0] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(&self.question);
        for ip in answers.iter().take(usize::from(count)) {
            // A pointer to the name in the question (offset 12).
            out.extend_from_slice(&[0xc0, 0x0c]);
            out.extend_from_slice(&TYPE_A.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&TTL_SECONDS.to_be_bytes());
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(&ip.octets());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A query for `name` as `dig` sends it.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            p.push(u8::try_from(label.len()).unwrap());
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&CLASS_IN.to_be_bytes());
        p
    }

    #[test]
    fn parses_the_question_and_answers_with_a_records() {
        let q = Query::parse(&query("px-0.px-pods.shop.svc", TYPE_A)).unwrap();
        assert_eq!(q.name, "px-0.px-pods.shop.svc");
        assert_eq!(q.qtype, TYPE_A);
        assert!(q.recursion_desired);
        let reply = q.reply(Some(&[Ipv4Addr::new(10, 244, 0, 7)]));
        assert_eq!(&reply[..2], &[0x12, 0x34], "same id");
        assert_eq!(reply[2] & 0x80, 0x80, "a response");
        assert_eq!(reply[3] & 0x0f, 0, "NOERROR");
        assert_eq!(&reply[6..8], &[0, 1], "one answer");
        assert_eq!(&reply[reply.len() - 4..], &[10, 244, 0, 7]);
    }

    #[test]
    fn unknown_names_are_nxdomain_and_responses_are_not_parsed_as_queries() {
        let q = Query::parse(&query("example.com", TYPE_A)).unwrap();
        let reply = q.reply(None);
        assert_eq!(reply[3] & 0x0f, 3, "NXDOMAIN");
        assert_eq!(&reply[6..8], &[0, 0]);
        assert!(Query::parse(&reply).is_none());
        assert!(Query::parse(&[0, 1, 2]).is_none());
    }
}
