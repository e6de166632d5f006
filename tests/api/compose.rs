//! docker-compose.yml cannot be run here (no Docker engine), so its wiring is checked against
//! what the code reads: variable names, the services the URLs name, ports, health checks and
//! volumes, and that the app's environment makes a valid configuration.

use std::collections::HashMap;

use nta_user_svc::config::{AWS_VARIABLES, Config, VARIABLES};
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
            VARIABLES.contains(&key.as_str()) || AWS_VARIABLES.contains(&key.as_str()),
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

    // Photos live in the s3 service's bucket: the endpoint names it and its S3 port, the keys
    // are its identity's, and s3-bucket creates that bucket before the app starts.
    let s3 = &services["s3"];
    let s3_command: Vec<String> = s3["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    assert!(s3_command.contains(&"-s3".to_owned()), "{s3_command:?}");
    assert!(
        s3_command.contains(&"-s3.port=8333".to_owned()),
        "{s3_command:?}"
    );
    assert_eq!(env["AWS_ENDPOINT"], "http://s3:8333");
    assert_eq!(env["AWS_ALLOW_HTTP"], "true");
    let bucket = env["PHOTO_STORE"]
        .strip_prefix("s3://")
        .expect("an s3:// store");
    let create = shell_command_of(&services["s3-bucket"]);
    assert!(
        create.contains(&format!("s3.bucket.create -name {bucket}")) && create.contains("s3:9333"),
        "{create}"
    );
    assert_eq!(
        str_of(&app["depends_on"]["s3-bucket"]["condition"]),
        "service_completed_successfully"
    );
    let config_target = format!("-s3.config={}", str_of(&s3["configs"][0]["target"]));
    assert!(s3_command.contains(&config_target), "{s3_command:?}");
    let source = str_of(&s3["configs"][0]["source"]);
    let identities: serde_json::Value =
        serde_json::from_str(&str_of(&compose["configs"][source.as_str()]["content"])).unwrap();
    let credentials = &identities["identities"][0]["credentials"][0];
    let no_keys_given = HashMap::new();
    for (variable, key) in [
        ("AWS_ACCESS_KEY_ID", "accessKey"),
        ("AWS_SECRET_ACCESS_KEY", "secretKey"),
    ] {
        assert_eq!(
            expand(&env[variable], &no_keys_given),
            expand(credentials[key].as_str().unwrap(), &no_keys_given),
            "{variable}"
        );
    }
    assert!(app.get("volumes").is_none(), "replicas share no volume");
    for (service, volume) in [("postgres", "pgdata"), ("s3", "s3data")] {
        let mounted: Vec<String> = services[service]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(str_of)
            .collect();
        assert!(mounted.iter().any(|v| v.starts_with(&format!("{volume}:"))));
        assert!(
            compose["volumes"].get(volume).is_some(),
            "volume {volume} is not declared"
        );
    }
    // Metrics listen inside the network only.
    assert_eq!(env["METRICS_ADDR"], "0.0.0.0:9464");
    assert!(
        !published.iter().any(|p| p.contains("9464")),
        "{published:?}"
    );

    // Every service checks its health, and the app waits for healthy backends.
    for name in ["app", "postgres", "redis", "s3"] {
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
    assert_eq!(config.photo_store.as_deref(), Some("s3://photos"));
    let aws: Vec<&str> = config.aws.iter().map(|(name, _)| *name).collect();
    for name in [
        "AWS_ENDPOINT",
        "AWS_ALLOW_HTTP",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(aws.contains(&name), "{aws:?}");
    }
    assert_eq!(config.metrics_addr.map(|a| a.port()), Some(9464));
}

/// The shell command a one-shot service runs (`sh -c "…"`).
fn shell_command_of(service: &Value) -> String {
    let entrypoint: Vec<String> = service["entrypoint"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    assert_eq!(entrypoint[..2], ["/bin/sh", "-c"]);
    entrypoint[2].clone()
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
