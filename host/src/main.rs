//! The `wsfn-host` binary: parses the command line and runs the host or an admin command.

mod admin_client;
mod cli;
mod config_file;
mod logs_command;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use hyper::Method;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing_subscriber::EnvFilter;
use wsfn_host::admin::{self, AdminToken};
use wsfn_host::cluster::ClusterLink;
use wsfn_host::config::Limits;
use wsfn_host::front::StaticFiles;
use wsfn_host::host::Host;
use wsfn_host::scaffold;
use wsfn_host::signing::{SigningKey, UrlSigning};
use wsfn_host::state::{MemoryStore, open_store};

use admin_client::{AdminClient, format_time, read_token};
use cli::{CheckArgs, Cli, ClientArgs, Command, DeployArgs, NewArgs, RollbackArgs, RunArgs};

fn main() -> std::process::ExitCode {
    // The matches are kept to tell options given on the command line from defaults, which a
    // config file may replace.
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    match run_command(cli, &matches) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The chain of causes is the message; a backtrace is for debugging the host itself.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_command(cli: Cli, matches: &ArgMatches) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Run(mut args) => {
            if let Some(run_matches) = matches.subcommand_matches("run") {
                config_file::load_into(&mut args, run_matches)?;
            }
            runtime.block_on(run(*args))
        }
        Command::Check(args) => runtime.block_on(check(args)),
        Command::Deploy(args) => runtime.block_on(deploy(args)),
        Command::Functions(args) => runtime.block_on(functions(args)),
        Command::Rollback(args) => runtime.block_on(rollback(args)),
        Command::Logs(args) => runtime.block_on(logs_command::follow(args)),
        Command::New(args) => new_function(&args),
    }
}

/// `wsfn-host new`: writes a function crate and says how to build and run it.
fn new_function(args: &NewArgs) -> Result<()> {
    let sdk = scaffold::find_sdk(args.sdk_path.as_deref())?;
    let created = scaffold::create(&args.name, &args.path, sdk)?;
    let name = &args.name;
    match &created.sdk {
        scaffold::SdkSource::Path(dir) => {
            println!(
                "created {} (wsfn-guest from {})",
                created.dir.display(),
                dir.display()
            );
        }
        scaffold::SdkSource::Registry => {
            println!("created {}", created.dir.display());
            eprintln!(
                "warning: the wsfn guest SDK was not found, so Cargo.toml asks the registry for                  wsfn-guest; pass --sdk-path or edit Cargo.toml to use a checkout's guest-sdk"
            );
        }
    }
    println!("next:");
    println!("  cd {} && ./build.sh", created.dir.display());
    println!("  wsfn-host run {name}.wasm");
    Ok(())
}

async fn run(args: RunArgs) -> Result<()> {
    // Checked first: a wrong directory should not wait for every function to compile.
    let static_files = match &args.static_dir {
        Some(dir) => {
            let files = StaticFiles::new(dir)?;
            tracing::info!("serving the files of {}", files.root().display());
            Some(Arc::new(files))
        }
        None => None,
    };
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            args.data_dir.display()
        )
    })?;
    let signing = UrlSigning::new(signing_key(&args)?, args.require_signed.iter().cloned());
    let token = admin_token(&args)?.with_public_metrics(args.public_metrics);
    let limits = args.limits.to_limits();
    let kv = open_store(
        args.store,
        args.redis.as_deref(),
        &args.data_dir,
        limits.kv_keys_per_function,
    )
    .await?;
    let mut host = Host::new(limits, &args.data_dir, kv)?.with_signing(signing);
    let cluster = match &args.redis {
        Some(url) => {
            let link = ClusterLink::connect(url, host.node, args.cluster.to_settings())
                .await
                .with_context(|| format!("cannot reach Redis at {url}"))?;
            link.register().await.context("cannot join the cluster")?;
            let link = Arc::new(link);
            host.join_cluster(link.clone());
            Some(link)
        }
        None => None,
    };
    for (name, settings) in &args.function_settings {
        host.functions.configure(name, settings.clone());
    }
    let host = Arc::new(host);
    host.functions.restore().await.with_context(|| {
        format!(
            "cannot restore the functions stored in {}",
            args.data_dir.display()
        )
    })?;
    if let Some(link) = &cluster {
        // Subscribe first so no change made while syncing is missed.
        let subscription = wsfn_host::cluster::subscribe(link)
            .await
            .context("cannot subscribe to the cluster's channels")?;
        let member: Arc<dyn wsfn_host::cluster::Member> = host.clone();
        tokio::spawn(wsfn_host::cluster::run_inbox(
            member.clone(),
            link.clone(),
            subscription,
        ));
        tokio::spawn(wsfn_host::cluster::run_liveness(member, link.clone()));
        host.functions.sync_all().await;
        host.functions
            .offer_to_cluster()
            .await
            .context("cannot offer this node's functions to the cluster")?;
        tracing::info!(node = %link.node, "joined the cluster");
    }
    for function in &args.functions {
        let bytes = std::fs::read(&function.path).with_context(|| {
            format!(
                "cannot read function `{}` from {}",
                function.name,
                function.path.display()
            )
        })?;
        let deployed = host
            .functions
            .deploy(&function.name, bytes)
            .await
            .with_context(|| {
                format!(
                    "cannot load function `{}` from {}",
                    function.name,
                    function.path.display()
                )
            })?;
        if deployed.unchanged {
            tracing::info!(function = %function.name, version = deployed.info.version, "already the current version");
        }
    }
    for name in &args.require_signed {
        if host.functions.get(name).is_none() {
            tracing::warn!("--require-signed names `{name}`, which is not deployed (yet)");
        }
    }
    if host.functions.names().is_empty() {
        tracing::warn!("no functions yet: deploy one with `wsfn-host deploy NAME FILE.wasm`");
    }

    // Signal handlers are installed before readiness is announced, so a SIGTERM sent right
    // after the announcement already shuts down gracefully.
    let terminate = signal(SignalKind::terminate()).context("cannot install a signal handler")?;
    let interrupt = signal(SignalKind::interrupt()).context("cannot install a signal handler")?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let admin_listener = TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("cannot listen for the admin API on {}", args.admin_listen))?;
    let address = listener.local_addr()?;
    let admin_address = admin_listener.local_addr()?;
    let _ = host.listen_address.set(address);
    println!("wsfn-host listening on ws://{address}");
    println!("wsfn-host admin API on http://{admin_address}");
    std::io::stdout().flush()?;
    for name in host.functions.names() {
        tracing::info!("serving function `{name}` at ws://{address}/{name}");
    }

    let admin_app = admin::router(host.clone(), token);
    let admin_shutdown = host.shutdown.clone();
    let mut admin = tokio::spawn(async move {
        axum::serve(admin_listener, admin_app)
            .with_graceful_shutdown(async move { admin_shutdown.cancelled().await })
            .await
    });
    let signals = tokio::spawn(stop_on_signal(host.clone(), terminate, interrupt));
    let still_open = wsfn_host::front::serve(host.clone(), listener, static_files)
        .await
        .context("the WebSocket listener failed")?;
    signals.abort();
    // Open log streams end on their own once the drain is over; give them a moment to send
    // their last lines before the admin listener is dropped.
    if tokio::time::timeout(ADMIN_GRACE, &mut admin).await.is_err() {
        admin.abort();
    }
    if let Some(link) = &cluster
        && let Err(error) = link.leave().await
    {
        tracing::warn!("could not leave the cluster cleanly: {error}");
    }
    if still_open > 0 {
        tracing::warn!(
            "{still_open} connections did not finish closing before the shutdown timeout"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long the admin API may take to finish its answers once the WebSocket side has shut down.
const ADMIN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The admin token: WSFN_ADMIN_TOKEN, the token file, or (on loopback only) a generated one
/// kept in the data directory so that clients on this machine find it.
fn admin_token(args: &RunArgs) -> Result<AdminToken> {
    if let Ok(token) = std::env::var("WSFN_ADMIN_TOKEN")
        && !token.trim().is_empty()
    {
        return Ok(AdminToken::new(&token));
    }
    if let Some(path) = &args.admin_token_file {
        let token = read_token(path)
            .with_context(|| format!("cannot read the admin token from {}", path.display()))?;
        return Ok(AdminToken::new(&token));
    }
    if !args.admin_listen.ip().is_loopback() {
        bail!(
            "refusing to serve the admin API on {} without a token: set WSFN_ADMIN_TOKEN or \
             pass --admin-token-file (or keep --admin-listen on a loopback address)",
            args.admin_listen
        );
    }
    let path = args.data_dir.join("admin-token");
    if let Ok(token) = read_token(&path) {
        return Ok(AdminToken::new(&token));
    }
    let token = generate_token();
    write_private(&path, token.as_bytes())
        .with_context(|| format!("cannot write the admin token to {}", path.display()))?;
    tracing::info!("generated an admin token in {}", path.display());
    Ok(AdminToken::new(&token))
}

/// The key of signed URLs: WSFN_SIGNING_KEY, else the key file, else none (signed URLs
/// cannot be minted, and those presented are refused).
fn signing_key(args: &RunArgs) -> Result<Option<SigningKey>> {
    let bytes = if let Ok(key) = std::env::var("WSFN_SIGNING_KEY")
        && !key.trim().is_empty()
    {
        key.trim().as_bytes().to_vec()
    } else if let Some(path) = &args.signing_key_file {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the signing key from {}", path.display()))?;
        bytes.trim_ascii().to_vec()
    } else {
        if !args.require_signed.is_empty() {
            bail!(
                "`{}` accepts only signed URLs, which needs a signing key: set \
                 WSFN_SIGNING_KEY or pass --signing-key-file",
                args.require_signed.join("`, `")
            );
        }
        return Ok(None);
    };
    Ok(Some(
        SigningKey::new(bytes).context("unusable signing key")?,
    ))
}

fn generate_token() -> String {
    wsfn_host::connections::ConnectionId::random().to_string()
        + &wsfn_host::connections::ConnectionId::random().to_string()
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Starts a graceful shutdown on SIGINT or SIGTERM.
async fn stop_on_signal(host: Arc<Host>, mut terminate: Signal, mut interrupt: Signal) {
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tracing::info!("shutting down: closing every connection with 1001");
    host.shutdown.cancel();
}

async fn check(args: CheckArgs) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("wsfn-check-{}", std::process::id()));
    let limits = Limits::default();
    let kv = Arc::new(MemoryStore::new(limits.kv_keys_per_function));
    let host = Host::new(limits, &scratch, kv)?;
    let mut failed = 0;
    for path in &args.files {
        let result = match std::fs::read(path) {
            Ok(bytes) => host
                .functions
                .check(bytes)
                .await
                .map_err(anyhow::Error::from),
            Err(error) => Err(anyhow::Error::from(error)),
        };
        match result {
            Ok(exports) => println!("ok    {}  ({exports})", path.display()),
            Err(error) => {
                failed += 1;
                println!("FAIL  {}: {error:#}", path.display());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if failed > 0 {
        bail!(
            "{failed} of {} components are not valid wsfn functions",
            args.files.len()
        );
    }
    Ok(())
}

async fn deploy(args: DeployArgs) -> Result<()> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let client = AdminClient::new(&args.client)?;
    let (_, result) = client
        .call(
            Method::PUT,
            &format!("/v1/functions/{}", args.name),
            "application/wasm",
            Bytes::from(bytes),
        )
        .await
        .with_context(|| format!("deploying `{}` failed", args.name))?;
    let version = &result["version"];
    if result["unchanged"].as_bool() == Some(true) {
        println!(
            "`{}` already serves this component as version {}; nothing changed",
            args.name, version["version"]
        );
    } else {
        println!(
            "`{}` now serves version {} ({} bytes, compiled in {} ms)",
            args.name, version["version"], version["size"], version["compile_ms"]
        );
    }
    Ok(())
}

async fn functions(args: ClientArgs) -> Result<()> {
    let client = AdminClient::new(&args)?;
    let (_, list) = client
        .call(
            Method::GET,
            "/v1/functions",
            "application/json",
            Bytes::new(),
        )
        .await?;
    let functions = list.as_array().cloned().unwrap_or_default();
    if functions.is_empty() {
        println!("no functions deployed");
        return Ok(());
    }
    println!(
        "{:<24} {:>7}  {:<19}  {:>11}",
        "NAME", "VERSION", "DEPLOYED (UTC)", "CONNECTIONS"
    );
    for function in functions {
        let current = &function["current"];
        println!(
            "{:<24} {:>7}  {:<19}  {:>11}",
            function["name"].as_str().unwrap_or("?"),
            current["version"].to_string(),
            format_time(current["deployed_at_ms"].as_u64().unwrap_or(0)),
            function["connections"].to_string()
        );
    }
    Ok(())
}

async fn rollback(args: RollbackArgs) -> Result<()> {
    let client = AdminClient::new(&args.client)?;
    let body = match args.version {
        Some(version) => serde_json::json!({ "version": version }).to_string(),
        None => String::new(),
    };
    let (_, version) = client
        .call(
            Method::POST,
            &format!("/v1/functions/{}/rollback", args.name),
            "application/json",
            Bytes::from(body),
        )
        .await
        .with_context(|| format!("rolling back `{}` failed", args.name))?;
    println!(
        "`{}` now serves version {} again",
        args.name, version["version"]
    );
    Ok(())
}
