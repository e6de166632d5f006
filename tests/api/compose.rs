//! docker-compose.yml cannot be run here (no Docker engine), so its wiring is checked against
//! what the code reads: variable names, the services the URLs name, ports, health checks and
//! volumes, and that the app's environment makes a valid configuration.

use std::collections::HashMap;

use nta_user_svc::config::{Config, VARIABLES};
use serde_yaml_ng::Value;

fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .expect("docker-compose.yml");
    serde_yaml_ng::from_str(&text).expect("docker-compose.yml is YAML")
}

fn str_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// `${NAME:-default}` / `${NAME:?message}` as compose would expand them with `given` set.
fn expand(value: &str, given: &HashMap<&str, &str>) -> String {
    let Some(inner) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) else {
        return value.to_owned();
    };
    let (name, fallback) = inner
        .split_once(":-")
        .or_else(|| inner.split_once(":?").map(|(n, _)| (n, "")))
        .unwrap_or((inner, ""));
    given
        .get(name)
        .map_or_else(|| fallback.to_owned(), |v| (*v).to_owned())
}

#[test]
fn the_app_service_is_wired_to_what_the_code_reads() {
    let compose = compose();
    let services = &compose["services"];
    let app = &services["app"];
    let env: HashMap<String, String> = app["environment"]
        .as_mapping()
        .expect("app.environment is a mapping")
        .iter()
        .map(|(k, v)| (str_of(k), str_of(v)))
        .collect();
    for key in env.keys() {
        assert!(
            VARIABLES.contains(&key.as_str()),
            "compose sets {key}, which the service does not read"
        );
    }

    // The URLs name the other services, with their credentials and ports.
    let database = &env["DATABASE_URL"];
    let pg = &services["postgres"]["environment"];
    let expected = format!(
        "postgres://{}:{}@postgres:5432/{}",
        str_of(&pg["POSTGRES_USER"]),
        str_of(&pg["POSTGRES_PASSWORD"]),
        str_of(&pg["POSTGRES_DB"])
    );
    assert_eq!(database, &expected);
    assert_eq!(env["REDIS_URL"], "redis://redis:6379");
    assert!(
        env["JWT_SECRET"].starts_with("${JWT_SECRET:?"),
        "no default secret in compose"
    );

    // The published port is the one the app listens on, on all interfaces.
    assert_eq!(env["HOST"], "0.0.0.0");
    let port = &env["PORT"];
    let published: Vec<String> = app["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    assert!(
        published.iter().any(|p| p.ends_with(&format!(":{port}"))),
        "{published:?}"
    );

    // Uploads live on a named volume; the database has its own.
    let volumes: Vec<String> = app["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    assert!(
        volumes.contains(&format!("uploads:{}", env["UPLOAD_DIR"])),
        "{volumes:?}"
    );
    let pg_volumes: Vec<String> = services["postgres"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    assert!(pg_volumes.iter().any(|v| v.starts_with("pgdata:")));
    for name in ["uploads", "pgdata"] {
        assert!(
            compose["volumes"].get(name).is_some(),
            "volume {name} is not declared"
        );
    }

    // Every service checks its health, and the app waits for healthy backends.
    for name in ["app", "postgres", "redis"] {
        assert!(
            services[name]["healthcheck"]["test"].is_sequence(),
            "{name} has no health check"
        );
    }
    for backend in ["postgres", "redis"] {
        assert_eq!(
            str_of(&app["depends_on"][backend]["condition"]),
            "service_healthy"
        );
    }
    let check: Vec<String> = app["healthcheck"]["test"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    assert_eq!(check, ["CMD", "nta-user-svc", "check-health"]);

    // With a secret given, the app's environment is a valid configuration.
    let given = HashMap::from([("JWT_SECRET", "0123456789abcdef0123456789abcdef")]);
    let expanded: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.clone(), expand(v, &given)))
        .collect();
    let config = Config::from_lookup(|k| expanded.get(k).cloned()).expect("a valid configuration");
    assert_eq!(config.port.to_string(), *port);
    assert!(config.redis_url.is_some());
    assert!(!config.jwt.secret_generated);
}

#[test]
fn the_dockerfile_runs_the_binary_with_its_health_check() {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(dockerfile.contains("cargo build --release --locked"));
    assert!(
        dockerfile.contains("FROM debian:bookworm-slim"),
        "a small runtime stage"
    );
    assert!(dockerfile.contains("CMD [\"nta-user-svc\", \"check-health\"]"));
    assert!(dockerfile.contains("USER app"), "not root");
    for line in dockerfile
        .lines()
        .filter(|l| l.trim_start().starts_with("ENV") || l.starts_with("    "))
    {
        if let Some((key, _)) = line.trim().trim_start_matches("ENV ").split_once('=') {
            assert!(VARIABLES.contains(&key.trim()), "Dockerfile sets {key}");
        }
    }
}
