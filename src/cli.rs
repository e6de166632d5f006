//! The command line: `serve` (the default), `migrate up|down|status`, `export-schema`,
//! `export-openapi`, and the bootstrap of administration: `create-admin`, `set-role`.

use std::io::IsTerminal;

use clap::{Parser, Subcommand, ValueEnum};
use migration::{Migrator, MigratorTrait};

use crate::{
    config::Config,
    db,
    domain::{Email, NewAccount, Role},
    error::AppError,
    graphql, rest, startup,
};

#[derive(Parser)]
#[command(
    name = "nta-user-svc",
    version,
    about = "User accounts, login, profiles and photos over GraphQL and REST"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve HTTP on HOST:PORT, applying pending migrations first (the default).
    Serve,
    /// Manage the database schema.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the GraphQL SDL (what `schema.graphql` holds).
    ExportSchema,
    /// Print the OpenAPI document of the REST paths (what `openapi.json` holds).
    ExportOpenapi,
    /// Make the account with this email an admin, creating it if there is none. The new
    /// account's password is read from stdin (typed unseen at a terminal), never from an
    /// argument or the environment, where other users of the machine could read it.
    CreateAdmin {
        /// The account's email.
        #[arg(long)]
        email: String,
    },
    /// Give the account with this email a role.
    SetRole {
        /// The account's email.
        #[arg(long)]
        email: String,
        /// The role.
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Exit 0 when the server on PORT answers `/readyz` with 200 (for container health checks).
    CheckHealth,
    /// Time bcrypt at BCRYPT_COST on this machine (to choose a cost; used by the benchmark).
    BcryptTiming {
        /// How many verifications to average over.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    User,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::User => Self::User,
            RoleArg::Admin => Self::Admin,
        }
    }
}

#[derive(Subcommand)]
pub enum MigrateAction {
    /// Apply all pending migrations.
    Up,
    /// Roll back the last `steps` migrations (default 1).
    Down {
        #[arg(default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
}

/// What an export command prints (they need no configuration); `None` for other commands.
pub fn export(command: &Command) -> Option<String> {
    match command {
        Command::ExportSchema => Some(graphql::sdl()),
        Command::ExportOpenapi => Some(rest::openapi_json()),
        _ => None,
    }
}

/// Runs the chosen command with a loaded configuration.
pub async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = startup::App::build(config).await?;
            app.run_until(startup::shutdown_signal()).await?;
            tracing::info!("stopped");
        }
        Command::Migrate { action } => {
            let db = db::connect(&config.database).await?;
            match action {
                MigrateAction::Up => Migrator::up(&db, None).await?,
                MigrateAction::Down { steps } => Migrator::down(&db, Some(steps)).await?,
                MigrateAction::Status => {
                    for migration in Migrator::get_migration_with_status(&db).await? {
                        println!("{}\t{}", migration.status(), migration.name());
                    }
                }
            }
        }
        Command::CreateAdmin { email } => {
            let (services, _) = startup::services(&config).await?;
            let account = match services
                .promote(&Email::normalize(&email))
                .await
                .map_err(failed)?
            {
                Some(account) => account,
                None => {
                    let password = read_password()?;
                    let new = NewAccount::parse(&email, password, None).map_err(failed)?;
                    services.create_admin(new).await.map_err(failed)?
                }
            };
            println!("{} (account {}) is an admin", account.email, account.id);
        }
        Command::SetRole { email, role } => {
            let (services, _) = startup::services(&config).await?;
            let role = Role::from(role);
            let account = services
                .set_role_by_email(&Email::normalize(&email), role)
                .await
                .map_err(failed)?
                .ok_or_else(|| anyhow::anyhow!("no account has the email {email}"))?;
            println!(
                "{} (account {}) is now {}",
                account.email,
                account.id,
                role.as_str()
            );
        }
        Command::CheckHealth => {
            let port = config.port;
            tokio::task::spawn_blocking(move || check_health(port)).await??;
        }
        Command::BcryptTiming { rounds } => {
            let cost = config.bcrypt_cost;
            let ms = tokio::task::spawn_blocking(move || bcrypt_timing(cost, rounds)).await??;
            println!("{{\"cost\": {cost}, \"verify_ms\": {ms:.2}}}");
        }
        Command::ExportSchema | Command::ExportOpenapi => {
            print!("{}", export(&command).unwrap_or_default());
        }
    }
    Ok(())
}

/// The new admin's password: typed unseen at a terminal, else the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password("Password for the new admin: ")?);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// A service error as the command line reports it.
fn failed(err: AppError) -> anyhow::Error {
    err.log();
    match err {
        AppError::Validation(errors) => anyhow::anyhow!(
            "{}",
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => anyhow::anyhow!(other.message()),
    }
}

/// A plain HTTP/1.0 `GET /readyz` on the loopback: no client library, no shell tools needed
/// in the container image.
fn check_health(port: u16) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(2);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    anyhow::ensure!(
        head.ends_with(b" 200"),
        "not ready: {}",
        String::from_utf8_lossy(&head)
    );
    Ok(())
}

/// Mean milliseconds of one bcrypt verification at `cost`.
fn bcrypt_timing(cost: u32, rounds: u32) -> anyhow::Result<f64> {
    let hash = bcrypt::hash("benchmark-password", cost)?;
    let started = std::time::Instant::now();
    for _ in 0..rounds.max(1) {
        bcrypt::verify("benchmark-password", &hash)?;
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds.max(1)))
}
