//! `amove-agent`: the headless agent (serve) and its provisioning commands.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use amove_agent::clock::{Clock, SystemClock};
use amove_agent::config::{self, Settings};
use amove_agent::secret::Secret;
use amove_agent::store::users::Status;
use amove_agent::{bootstrap, server};

/// mimalloc, built without transparent huge pages (docs/decisions.md, Allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "amove-agent",
    version,
    about = "Amove desktop agent: local SSO API on localhost:29123"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct DataDir {
    /// Data directory (database, keys). Default: the platform's per-user data directory.
    #[arg(long, env = "AMOVE_AGENT_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl DataDir {
    fn path(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(config::default_data_dir)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the local API until SIGINT/SIGTERM.
    Serve {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, env = "AMOVE_AGENT_ADDR", default_value = config::DEFAULT_ADDR, value_parser = config::parse_addr)]
        addr: std::net::SocketAddr,
        #[command(flatten)]
        data: DataDir,
        /// Lifetime of session JWTs from sign-in, in seconds.
        #[arg(long, env = "AMOVE_SESSION_TTL_SECS", default_value_t = 8 * 3600)]
        session_ttl_secs: u64,
        /// The absolute session lifetime in days: a session is renewed (`/sso/refresh`) for at
        /// most this long after its sign-in, then the user signs in again.
        #[arg(long, env = "AMOVE_AGENT_SESSION_MAX_DAYS", default_value_t = 30,
              value_parser = clap::value_parser!(u64).range(1..=3650))]
        session_max_days: u64,
        /// TEST SETTING, never in production: let GraphURL name a loopback URL (a Microsoft
        /// Graph test double). The agent warns at start and audits such configurations.
        #[arg(long, env = "AMOVE_TEST_ALLOW_LOOPBACK_GRAPH", hide = true,
              value_parser = clap::builder::BoolishValueParser::new())]
        test_allow_loopback_graph: bool,
        /// The managed configuration file to follow (docs/policy.md). Default: the platform's
        /// (/etc/amove/policy.json on Linux).
        #[arg(long, env = "AMOVE_AGENT_POLICY")]
        policy: Option<PathBuf>,
        /// How often the policy file is checked for a change, in milliseconds.
        #[arg(
            long,
            env = "AMOVE_AGENT_POLICY_POLL_MS",
            default_value_t = 3000,
            hide = true
        )]
        policy_poll_ms: u64,
    },
    /// Check a managed configuration (policy) file before pushing it to a fleet.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Create the account and its owner admin (password from AMOVE_ADMIN_PASSWORD or a prompt).
    Init {
        /// Account identifier, e.g. mycompany.
        #[arg(long)]
        account: String,
        /// The owner's email (their username).
        #[arg(long)]
        admin: String,
        /// The owner's name, "First Last".
        #[arg(long)]
        name: Option<String>,
        /// The account's display name (default: the identifier).
        #[arg(long)]
        account_name: Option<String>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate FILE as the agent would (permissions, format, every value); exits non-zero
    /// with one line per problem.
    Check {
        /// The policy file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user (a local password only when AMOVE_USER_PASSWORD is set; SSO users need none).
    Add {
        #[arg(long)]
        account: String,
        #[arg(long)]
        email: String,
        /// Make the user an admin of the account.
        #[arg(long)]
        admin: bool,
        /// "First Last".
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Deactivate a user: every sign-in and token of theirs is refused until enabled again.
    Disable {
        #[arg(long)]
        account: String,
        #[arg(long)]
        email: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// Re-activate a user.
    Enable {
        #[arg(long)]
        account: String,
        #[arg(long)]
        email: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// List the account's users.
    List {
        #[arg(long)]
        account: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataDir,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AMOVE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Serve {
            addr,
            data,
            session_ttl_secs,
            session_max_days,
            test_allow_loopback_graph,
            policy,
            policy_poll_ms,
        } => {
            let mut settings = Settings::new(addr, data.path());
            settings.session_ttl = std::time::Duration::from_secs(session_ttl_secs.max(1));
            settings.session_max_age =
                std::time::Duration::from_secs(session_max_days.saturating_mul(24 * 3600));
            settings.loopback_graph = test_allow_loopback_graph;
            settings.net = match amove_agent::sso::net::NetSettings::from_env() {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("amove-agent: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Some(p) = policy {
                settings.policy_path = Some(p);
            }
            settings.policy_poll_interval =
                std::time::Duration::from_millis(policy_poll_ms.max(50));
            serve(settings)
        }
        Command::Policy {
            command: PolicyCommand::Check { file },
        } => policy_check(&file),
        Command::Init {
            account,
            admin,
            name,
            account_name,
            data,
        } => init(&account, &admin, name, account_name, data.path()),
        Command::User {
            command:
                UserCommand::Add {
                    account,
                    email,
                    admin,
                    name,
                    data,
                },
        } => user_add(&account, &email, admin, name, data.path()),
        Command::User {
            command:
                UserCommand::List {
                    account,
                    json,
                    data,
                },
        } => user_list(&account, json, data.path()),
        Command::User {
            command:
                UserCommand::Disable {
                    account,
                    email,
                    data,
                },
        } => user_status(&account, &email, Status::Inactive, data.path()),
        Command::User {
            command:
                UserCommand::Enable {
                    account,
                    email,
                    data,
                },
        } => user_status(&account, &email, Status::Active, data.path()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("amove-agent: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn serve(settings: Settings) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let agent = server::start(settings).await.map_err(|e| e.to_string())?;
        println!("listening on http://{}", agent.local_addr());
        let _ = std::io::stdout().flush();
        agent
            .serve(server::shutdown_signal())
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// `policy check FILE`: the problems the agent would refuse the file for, one per line.
fn policy_check(file: &std::path::Path) -> Result<(), String> {
    use amove_agent::policy::{self, file::Read};
    let name = file.display();
    let bytes = match policy::file::read(file) {
        Ok(Read::Bytes(b)) => b,
        Ok(Read::Absent) => return Err(format!("policy file {name}: no such file")),
        Err(reason) => return Err(format!("policy file {name}: {reason}")),
    };
    match policy::parse(file, &bytes, SystemClock.now(), false) {
        Ok(p) => {
            let keys: Vec<&str> = p.managed_keys().iter().map(|k| k.label()).collect();
            let account = p
                .account
                .as_ref()
                .map(|a| format!(" for account '{}'", a.identifier))
                .unwrap_or_default();
            println!(
                "policy file {name}: OK{account}; manages {}",
                if keys.is_empty() {
                    "nothing".to_string()
                } else {
                    keys.join(", ")
                }
            );
            Ok(())
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("policy file {name}: {p}");
            }
            Err(format!(
                "policy file {name}: {} problem(s); the agent would refuse it and keep its last \
                 good configuration",
                problems.len()
            ))
        }
    }
}

fn open(data_dir: PathBuf) -> Result<amove_agent::store::Db, String> {
    let settings = Settings::new(config::parse_addr(config::DEFAULT_ADDR)?, data_dir);
    server::open_db(&settings).map_err(|e| e.to_string())
}

fn read_password(env: &str, prompt: &str) -> Result<Option<Secret>, String> {
    if let Ok(pw) = std::env::var(env) {
        return Ok(Some(Secret::new(pw)));
    }
    if env == "AMOVE_USER_PASSWORD" {
        return Ok(None);
    }
    let first = rpassword::prompt_password(prompt)
        .map_err(|e| format!("cannot read the password: {e} (set {env})"))?;
    let again = rpassword::prompt_password("Repeat it: ")
        .map_err(|e| format!("cannot read the password: {e}"))?;
    if first != again {
        return Err("the passwords do not match".into());
    }
    Ok(Some(Secret::new(first)))
}

fn init(
    account: &str,
    admin: &str,
    name: Option<String>,
    account_name: Option<String>,
    data_dir: PathBuf,
) -> Result<(), String> {
    // Validate before prompting, so a typo is reported before the password is typed.
    let ident = bootstrap::validate_identifier(account).map_err(|e| e.to_string())?;
    let email = bootstrap::validate_email(admin).map_err(|e| e.to_string())?;
    let db = open(data_dir.clone())?;
    bootstrap::check_new_account(&db, &ident, &email).map_err(|e| e.to_string())?;
    let pw = read_password("AMOVE_ADMIN_PASSWORD", &format!("Password for {admin}: "))?
        .ok_or("a password is required")?;
    let (_, user) = bootstrap::init_account(
        &db,
        account,
        account_name.as_deref(),
        admin,
        name.as_deref(),
        &pw,
        SystemClock.now(),
    )
    .map_err(|e| e.to_string())?;
    println!(
        "created account '{}' with owner {} in {}",
        account.trim().to_lowercase(),
        user.email,
        data_dir.display()
    );
    Ok(())
}

fn user_add(
    account: &str,
    email: &str,
    admin: bool,
    name: Option<String>,
    data_dir: PathBuf,
) -> Result<(), String> {
    let pw = read_password("AMOVE_USER_PASSWORD", "")?;
    let db = open(data_dir)?;
    let u = bootstrap::add_user(
        &db,
        account,
        email,
        admin,
        name.as_deref(),
        pw.as_ref(),
        SystemClock.now(),
    )
    .map_err(|e| e.to_string())?;
    println!(
        "added {} ({}) to account '{}'",
        u.email,
        u.role.as_str(),
        account.trim().to_lowercase()
    );
    Ok(())
}

fn user_status(
    account: &str,
    email: &str,
    status: Status,
    data_dir: PathBuf,
) -> Result<(), String> {
    let db = open(data_dir)?;
    bootstrap::set_user_status(&db, account, email, status, SystemClock.now())
        .map_err(|e| e.to_string())?;
    println!("{} is now {}", email.trim().to_lowercase(), status.as_str());
    Ok(())
}

fn user_list(account: &str, json: bool, data_dir: PathBuf) -> Result<(), String> {
    let db = open(data_dir)?;
    let users = bootstrap::list_users(&db, account).map_err(|e| e.to_string())?;
    if json {
        let list: Vec<serde_json::Value> = users
            .iter()
            .map(|u| {
                serde_json::json!({
                    "Id": u.id, "Username": u.email, "Firstname": u.first_name, "Lastname": u.last_name,
                    "Role": u.role.as_str(), "Status": u.status.as_str(), "HasPassword": u.password_hash.is_some(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        println!("{:<40} {:<8} {:<9} NAME", "EMAIL", "ROLE", "STATUS");
        for u in users {
            println!(
                "{:<40} {:<8} {:<9} {}",
                u.email,
                u.role.as_str(),
                u.status.as_str(),
                format!("{} {}", u.first_name, u.last_name).trim()
            );
        }
    }
    Ok(())
}
