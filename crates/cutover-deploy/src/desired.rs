//! From configuration to desired state: a host's effective addresses and the `DesiredService` its
//! agent runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use cutover_agent::Slot;
use cutover_agent::health::{HealthSpec, Probe};
use cutover_agent::protocol::{DesiredRelease, DesiredRouting, DesiredService};
use cutover_agent::runtime::{LogPolicy, ProcessSpec, RestartPolicy, SecretSource};
use cutover_config::{Environment, Secret, Service};

use crate::DeployError;

/// One host of an environment as the configuration describes it.
pub type HostSpec = cutover_config::EnvHost;

/// The hosts of an environment.
#[must_use]
pub fn env_hosts(env: &Environment) -> Vec<HostSpec> {
    env.hosts.clone()
}

/// A host's effective addresses: the router's listen address and the two slot ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    pub listen: SocketAddr,
    pub ports: BTreeMap<Slot, u16>,
}

/// Host listen = the host's own, else the environment's, else an error; slot ports = the host's,
/// else the service's, else listen port + 1 (blue) and + 2 (green).
pub fn addresses(
    environment: &str,
    env: &Environment,
    service: &Service,
    host: &HostSpec,
) -> Result<Addresses, DeployError> {
    let text = host
        .listen
        .as_deref()
        .or(env.listen.as_deref())
        .ok_or_else(|| DeployError::NoListen {
            environment: environment.to_owned(),
            host: host.name.clone(),
        })?;
    let listen: SocketAddr = text.parse().map_err(|_| DeployError::BadListen {
        environment: environment.to_owned(),
        host: host.name.clone(),
        value: text.to_owned(),
    })?;
    let ports = match host.ports.as_ref().or(service.ports.as_ref()) {
        Some(p) => BTreeMap::from([(Slot::Blue, p.blue), (Slot::Green, p.green)]),
        None => {
            let p = listen.port();
            let (Some(blue), Some(green)) = (p.checked_add(1), p.checked_add(2)) else {
                return Err(DeployError::NoSlotPorts {
                    environment: environment.to_owned(),
                    host: host.name.clone(),
                    port: p,
                });
            };
            BTreeMap::from([(Slot::Blue, blue), (Slot::Green, green)])
        }
    };
    Ok(Addresses { listen, ports })
}

fn secret_source(s: &Secret) -> SecretSource {
    match s {
        Secret::Env { env } => SecretSource::Env(env.clone()),
        Secret::File { file } => SecretSource::File(file.clone()),
    }
}

/// How the agent starts and stops the service's processes.
#[must_use]
pub fn process_spec(service_name: &str, service: &Service, env: &Environment) -> ProcessSpec {
    let mut p = ProcessSpec::new(service_name, service.start.as_slice().to_vec());
    p.env = service.env.clone();
    // The environment's variables refine the service's.
    p.env
        .extend(env.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    p.secrets = service
        .secrets
        .iter()
        .map(|(k, v)| (k.clone(), secret_source(v)))
        .collect();
    p.stop_timeout = service.stop_timeout.get();
    let initial = service.restart.backoff.get();
    p.restart = RestartPolicy {
        max_restarts: service.restart.max,
        initial_backoff: initial,
        max_backoff: RestartPolicy::default().max_backoff.max(initial),
        ..RestartPolicy::default()
    };
    p.logs = LogPolicy::default();
    p
}

/// How the agent judges a slot healthy. Without `health`, a TCP connect is the probe (the
/// process is up and listens).
#[must_use]
pub fn health_spec(service: &Service) -> HealthSpec {
    let mut h = HealthSpec::http("/");
    h.probe = Probe::Tcp;
    if let Some(c) = &service.health {
        h.probe = match &c.probe {
            cutover_config::Probe::Http {
                path,
                expected_status,
            } => Probe::Http {
                path: path.clone(),
                expected_status: *expected_status,
            },
            cutover_config::Probe::Tcp => Probe::Tcp,
            cutover_config::Probe::Command(argv) => Probe::Command {
                argv: argv.as_slice().to_vec(),
            },
        };
        h.timeout = c.timeout.get();
        h.interval = c.interval.get();
        h.healthy_after = c.healthy_after;
        h.unhealthy_after = c.unhealthy_after;
    }
    h.version_probe = service.version_probe.as_ref().map(|v| v.path.clone());
    h
}

/// How long a new slot may take to become healthy (`health.start_timeout`, default 60 s).
#[must_use]
pub fn start_timeout(service: &Service) -> std::time::Duration {
    service
        .health
        .as_ref()
        .map_or(std::time::Duration::from_secs(60), |h| {
            h.start_timeout.get()
        })
}

/// The desired state of the service on one host: everything but the slots and routing, which the
/// strategy sets.
#[must_use]
pub fn desired_service(
    service_name: &str,
    service: &Service,
    env: &Environment,
    addr: &Addresses,
) -> DesiredService {
    DesiredService {
        listen: addr.listen,
        process: process_spec(service_name, service, env),
        health: health_spec(service),
        ports: addr.ports.clone(),
        slots: BTreeMap::new(),
        routing: DesiredRouting::default(),
        drain_timeout: service.drain_timeout.get(),
        keep_releases: usize::try_from(service.keep_releases).unwrap_or(usize::MAX),
    }
}

/// The release a slot runs, from a release's version and `sha256:<hex>` digest.
#[must_use]
pub fn desired_release(version: &str, digest_hex: &str) -> DesiredRelease {
    DesiredRelease {
        version: version.to_owned(),
        artifact_sha256: digest_hex.to_owned(),
        warm_until: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cutover_config::SlotPorts;

    fn config(extra_env: &str, extra_service: &str) -> cutover_config::Config {
        let src = format!(
            r#"
[project]
name = "hello"

[service]
start = ["{{release_dir}}/bin/app", "--port", "{{port}}"]
env = {{ A = "1" }}
secrets = {{ TOKEN = {{ env = "HELLO_TOKEN" }} }}
health = {{ path = "/health", interval = "50ms", timeout = "1s", healthy_after = 2, start_timeout = "5s" }}
version_probe = {{ path = "/version" }}
stop_timeout = "3s"
keep_releases = 2
{extra_service}

[environments.staging]
hosts = ["local"]
{extra_env}
"#
        );
        cutover_config::load_str(
            &src,
            std::path::Path::new("cutover.toml"),
            &[] as &[(&str, &str)],
        )
        .unwrap()
    }

    #[test]
    fn addresses_fall_back_from_host_to_environment_to_listen_port() {
        let c = config("listen = \"127.0.0.1:8080\"", "");
        let env = &c.environments["staging"];
        let svc = c.service.as_ref().unwrap();
        let hosts = env_hosts(env);
        let a = addresses("staging", env, svc, &hosts[0]).unwrap();
        assert_eq!(a.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(a.ports[&Slot::Blue], 8081);
        assert_eq!(a.ports[&Slot::Green], 8082);
        let own = HostSpec {
            name: "h2".into(),
            listen: Some("127.0.0.1:9000".into()),
            ports: Some(SlotPorts {
                blue: 7001,
                green: 7002,
            }),
        };
        let a = addresses("staging", env, svc, &own).unwrap();
        assert_eq!(a.listen.port(), 9000);
        assert_eq!(a.ports[&Slot::Green], 7002);

        let c = config("", "ports = { blue = 9101, green = 9102 }");
        let env = &c.environments["staging"];
        let err = addresses(
            "staging",
            env,
            c.service.as_ref().unwrap(),
            &env_hosts(env)[0],
        )
        .unwrap_err();
        assert!(matches!(err, DeployError::NoListen { .. }), "{err}");
        assert!(err.hint().unwrap().contains("listen = \"127.0.0.1:8080\""));
        let c = config("listen = \"127.0.0.1:65535\"", "");
        let env = &c.environments["staging"];
        let err = addresses(
            "staging",
            env,
            c.service.as_ref().unwrap(),
            &env_hosts(env)[0],
        )
        .unwrap_err();
        assert!(matches!(err, DeployError::NoSlotPorts { .. }), "{err}");
    }

    #[test]
    fn desired_service_carries_process_health_and_timing() {
        let c = config(
            "listen = \"127.0.0.1:8080\"\nenv = { B = \"2\", A = \"env\" }",
            "",
        );
        let env = &c.environments["staging"];
        let svc = c.service.as_ref().unwrap();
        let addr = addresses("staging", env, svc, &env_hosts(env)[0]).unwrap();
        let d = desired_service("hello", svc, env, &addr);
        assert_eq!(d.process.argv[0], "{release_dir}/bin/app");
        assert_eq!(d.process.env["A"], "env");
        assert_eq!(d.process.env["B"], "2");
        assert_eq!(
            d.process.secrets["TOKEN"],
            SecretSource::Env("HELLO_TOKEN".into())
        );
        assert_eq!(d.process.stop_timeout, std::time::Duration::from_secs(3));
        assert_eq!(d.health.version_probe.as_deref(), Some("/version"));
        assert_eq!(d.health.interval, std::time::Duration::from_millis(50));
        assert!(
            matches!(d.health.probe, Probe::Http { ref path, expected_status: 200 } if path == "/health")
        );
        assert_eq!(d.keep_releases, 2);
        assert_eq!(start_timeout(svc), std::time::Duration::from_secs(5));
        assert!(d.slots.is_empty() && d.routing == DesiredRouting::default());
        // It is a valid protocol message.
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<DesiredService>(&json).unwrap(), d);
    }
}
