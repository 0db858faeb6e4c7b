//! The command layer: argument parsing, printing, prompts, JSON and exit codes.
//! One function per command, each over the library (`deploy`, `config`,
//! `verify`, …), which returns data and typed errors and never prints.
//! `main.rs` only calls [`run`] and maps its result to an exit code.

mod cluster;
mod files;
mod history;
mod logs;
mod progress;
mod verify;

pub use progress::Progress;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::config::{self, Loaded};

/// Exit codes: 0 ok, 1 error, 2 "there are changes" (plan --detailed-exitcode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    Changes,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Failed => 1,
            Outcome::Changes => 2,
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "deployer",
    version,
    about = "Declarative deployer for a multi-node web app cluster",
    long_about = "Declarative deployer for a multi-node web app cluster.\n\n\
        Edit cluster.toml (nodes, pool size, balancer strategy, max_connections); \
        `deployer validate` checks it and its connection budget, `deployer render` \
        writes generated/nginx.conf and generated/docker-compose.yml.",
    after_help = "Examples:\n  deployer validate\n  deployer -f staging.toml render --check\n  deployer render --json"
)]
pub struct Cli {
    /// The cluster file.
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        default_value = "cluster.toml",
        value_name = "PATH"
    )]
    pub file: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check cluster.toml and its connection budget.
    #[command(
        long_about = "Check cluster.toml: syntax, unknown keys, values, names, ports, and the \
            connection budget (every node's pool plus its job-queue listener, plus the extra nodes \
            of a rolling update, plus a reserve, must fit under max_connections minus the \
            superuser reserve). Reports every problem with file:line:column and a hint.",
        after_help = "Examples:\n  deployer validate\n  deployer validate -f prod.toml --json"
    )]
    Validate(JsonFlag),

    /// Render templates/ into generated/ (nginx.conf, docker-compose.yml).
    #[command(
        long_about = "Render templates/ (next to cluster.toml, or the built-in ones) into the \
            output directory: nginx.conf for the balancer and docker-compose.yml. Validates \
            first and writes nothing when the file has errors. Secrets are created once in \
            .deployer/secrets (mode 0600) and never written into the output. With --check, \
            writes nothing and exits 1 with a diff when the output is out of date.",
        after_help = "Examples:\n  deployer render\n  deployer render --check\n  deployer render --out /tmp/out --json"
    )]
    Render(RenderArgs),

    /// Show what apply would change on the Docker engine.
    #[command(
        long_about = "Compare cluster.toml with what runs on the Docker engine (the containers, \
            network and volume carrying the cluster's labels) and print the changes, \
            Terraform-style: `+` create, `~` change in place (start a stopped node, reload \
            nginx), `-/+` replace with the reason, `-` destroy. Changes nothing.",
        after_help = "Examples:\n  deployer plan\n  deployer plan --steps             # also the ordered steps apply will take\n  deployer plan --detailed-exitcode   # 0 no changes, 2 changes, 1 error\n  deployer plan --json"
    )]
    Plan(PlanArgs),

    /// Converge the Docker engine to cluster.toml.
    #[command(
        long_about = "Validate, plan, ask, then converge in dependency order: network and volume; \
            PostgreSQL (health-gated; the live max_connections and other clients' connections are \
            checked against the budget); PgBouncer when [database] pooler is on (health-gated); \
            migrations once; Redis; app nodes, each ready before \
            nginx sends it traffic; nginx. Scaling touches only the affected nodes; a changed \
            image or env rolls the nodes max_surge at a time with no failed requests. Writes \
            generated/ so it holds exactly what was applied.",
        after_help = "Examples:\n  deployer apply\n  deployer apply --yes            # no question (needed without a terminal)"
    )]
    Apply(ApplyArgs),

    /// Roll the cluster back to an earlier revision (by default the one before).
    #[command(
        long_about = "Run an earlier revision of the cluster again: the cluster.toml it applied, \
            with the images it ran pinned by ID (on a swarm, by registry digest) even when \
            [app] image's tag now points elsewhere. Planned and shown like an apply, confirmed \
            (on a terminal, or --yes), carried out health-gated with the rolling update (no \
            failed request), and recorded as a new revision. Without --to, goes to the last \
            revision that applied before the deployed one. Refused before anything changes \
            when the database has a migration the revision's image does not know (the schema \
            moved forward), when the revision failed, or when its images are gone. \
            cluster.toml is not rewritten: afterwards `deployer plan` shows the way from the \
            running cluster back to the file; `deployer history --show N` prints the \
            revision's file.",
        after_help = "Examples:\n  deployer rollback                 # to the revision before the deployed one\n  deployer rollback --to 3          # to revision 3 (see `deployer history`)\n  deployer rollback --to 3 --yes    # without asking\n  deployer history --show 3 > cluster.toml   # then make the file match"
    )]
    Rollback(RollbackArgs),

    /// List the cluster's revisions: each apply and rollback, its outcome and what changed.
    #[command(
        long_about = "List the revisions recorded in .deployer/revisions/<cluster>/ next to \
            cluster.toml, as `helm history` does: number, when, status (deployed, superseded, \
            failed), what it was (apply, rollback to N, failed and rolled back by a health \
            gate) and what changed since the revision before it (nodes 3→5, image \
            deployer-app:ab12→cd34, env FOO changed). Reads files only; never a secret.",
        after_help = "Examples:\n  deployer history\n  deployer history --json\n  deployer history --show 3                  # revision 3's cluster.toml\n  deployer history --show 3 > cluster.toml"
    )]
    History(HistoryArgs),

    /// Show each service and node, its health, and the connections in use (and the pooler's pools).
    #[command(after_help = "Examples:\n  deployer status\n  deployer status --json")]
    Status(JsonFlag),

    /// Remove every container and the network of the cluster.
    #[command(
        long_about = "Remove every container and the network the cluster created (found by its \
            labels). The database volume is kept unless --volumes is given.",
        after_help = "Examples:\n  deployer destroy --yes\n  deployer destroy --volumes --yes   # also delete the data"
    )]
    Destroy(DestroyArgs),

    /// List the service images cluster.toml names (one per line).
    #[command(
        long_about = "Print the PostgreSQL, nginx and (when enabled) Redis and PgBouncer image references of \
            cluster.toml, one per line: what `docker pull` (or scripts/build-images.sh, which \
            builds compatible images from Debian packages when no registry answers) must provide. \
            The app image comes from `deployer build`.",
        after_help = "Examples:\n  deployer images\n  scripts/build-images.sh $(deployer images)"
    )]
    Images,

    /// Build the app image from this workspace.
    #[command(
        long_about = "Compile the app (`cargo build --release -p app`) and build its image on \
            Debian bookworm-slim, tagged REPO:<content hash> and with the [app] image ref of \
            cluster.toml. An unchanged binary reuses the existing image.",
        after_help = "Examples:\n  deployer build\n  deployer build && deployer apply --yes"
    )]
    Build,

    /// Check that the running cluster does what cluster.toml says, with figures.
    #[command(
        long_about = "Check the running cluster, each check printed as PASS or FAIL with its \
            figure: the balancer answers; every node answers its health and readiness checks \
            inside the cluster network; requests through the balancer spread as the strategy \
            says (round_robin, least_conn and random over every node, ip_hash on one); the \
            database answers within the connection budget; one login's token works on every \
            node; background jobs complete exactly once on several nodes; a bounded load run \
            (req/s, p50, p99, errors). With --chaos, also stops one node, counts failed \
            requests while it is down, and brings it back with the deployer's own convergence. \
            Its test user and jobs are labelled and deleted at the end. Exits 1 when any \
            check fails. On a swarm, the looks inside run as one-off tasks on the cluster's \
            network, and --chaos is refused (a manager cannot stop one task on another host).",
        after_help = "Examples:\n  deployer verify\n  deployer verify --chaos\n  deployer verify --json\n  deployer verify --requests 5000 --concurrency 50\n  deployer verify --url http://127.0.0.1:14000   # a swarm's balancer through a forwarded port"
    )]
    Verify(VerifyArgs),

    /// Show the cluster's logs: every unit, or some, merged in time order; -f follows.
    #[command(
        long_about = "Show the logs of the whole cluster, or of the units named: `app` (every node), \
            one node (`app-2` or `demo-app-2`), `postgres`, `balancer` (or `lb`), `redis`, `pooler`. \
            Lines of all of them are merged in the order the engine stamped them, each prefixed with \
            its unit's name (coloured on a terminal; no colour when stdout is not a terminal or \
            NO_COLOR is set). The app's JSON log lines read as `time LEVEL message key=value…`; \
            other lines are shown as written; times are UTC. With -f, keeps printing lines as they \
            come, across rollouts: a node's replacement goes on under the node's name. On a swarm \
            an app task is named by its slot (task demo-app.2 is node demo-app-2). --json prints \
            one JSON object per line: the app's own object with a `unit` key put first (every \
            other byte as the app wrote it), any other line as {\"unit\", \"timestamp\", \"message\"}. \
            In this command -f is --follow: give the file before the command (`deployer -f \
            prod.toml logs -f`) or as --file.",
        after_help = "Examples:\n  deployer logs                      # every unit, all lines kept by the engine\n  deployer logs app --tail 20        # the last 20 lines of each node\n  deployer logs app-2 lb --since 10m\n  deployer logs -f                   # follow, through rollouts; Ctrl-C stops\n  deployer logs app --json | jq 'select(.level == \"ERROR\")'\n  deployer -f prod.toml logs postgres -f"
    )]
    Logs(LogsArgs),
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Units to show: app (every node), app-N or <cluster>-app-N (one node), postgres,
    /// balancer (lb), redis, pooler [default: every unit].
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Keep printing new lines as they come (through rollouts) until interrupted.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only lines written since then: 30s, 10m, 2h, 1h30m.
    #[arg(long, value_name = "DURATION", value_parser = logs::parse_since)]
    pub since: Option<Duration>,
    /// Only the last N lines of each unit (before following) [default: all].
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// One JSON object per line (the app's own, with "unit" added; others wrapped).
    #[arg(long)]
    pub json: bool,
    /// The cluster file (in `logs`, -f is --follow: put `-f PATH` before the command).
    #[arg(long = "file", value_name = "PATH", default_value = "cluster.toml")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also print the steps apply will carry out, in order (`--json` always has them).
    #[arg(long)]
    pub steps: bool,
    /// Print a machine-readable plan (changes and steps) on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Apply without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The revision to roll back to [default: the one that applied before the deployed one].
    #[arg(long, value_name = "REVISION")]
    pub to: Option<u32>,
    /// Roll back without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Print a machine-readable history on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print the cluster.toml revision N applied, and nothing else.
    #[arg(long, value_name = "N", conflicts_with = "json")]
    pub show: Option<u32>,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Also remove the database volume (all data).
    #[arg(long)]
    pub volumes: bool,
    /// Destroy without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Also stop one node, count failed requests, and bring it back with apply's convergence.
    #[arg(long)]
    pub chaos: bool,
    /// The balancer as this machine reaches it, when not at the file's address (e.g. a
    /// swarm's balancer host through a forwarded port): `http://127.0.0.1:14000`.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Print a machine-readable result on stdout.
    #[arg(long)]
    pub json: bool,
    /// Requests of the distribution check and of the load run.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub requests: u32,
    /// Requests in flight at once.
    #[arg(long, value_name = "C", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub concurrency: u32,
    /// GET /api/auth/me calls made with one login's token.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub auth_requests: u32,
    /// Background jobs to enqueue.
    #[arg(long, value_name = "M", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub jobs: u32,
    /// Seconds the jobs may take to complete.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub jobs_deadline: u32,
    /// Seconds of traffic through the balancer while the stopped node is down (--chaos).
    #[arg(long, value_name = "SECONDS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=600))]
    pub chaos_seconds: u32,
}

impl Default for VerifyArgs {
    /// The command line's own defaults (`deployer verify`), so the two cannot drift apart.
    fn default() -> VerifyArgs {
        match Cli::parse_from(["deployer", "verify"]).command {
            Command::Verify(a) => a,
            _ => unreachable!("`deployer verify` parses as the verify command"),
        }
    }
}

impl From<&VerifyArgs> for crate::verify::Options {
    fn from(a: &VerifyArgs) -> crate::verify::Options {
        crate::verify::Options {
            chaos: a.chaos,
            requests: a.requests,
            concurrency: a.concurrency,
            auth_requests: a.auth_requests,
            jobs: a.jobs,
            jobs_deadline: Duration::from_secs(a.jobs_deadline.into()),
            chaos_duration: Duration::from_secs(a.chaos_seconds.into()),
            url: a.url.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print a machine-readable result on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Output directory [default: generated/ next to cluster.toml].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write nothing; exit 1 and show a diff when the output is out of date.
    #[arg(long)]
    pub check: bool,
    /// Print a machine-readable result on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let file = &cli.file;
    match &cli.command {
        Command::Validate(a) => files::validate(file, a.json),
        Command::Render(a) => files::render(file, a),
        Command::Images => files::images(file),
        Command::Plan(a) => runtime()?.block_on(cluster::plan(file, a)),
        Command::Apply(a) => runtime()?.block_on(cluster::apply(file, a)),
        Command::Rollback(a) => runtime()?.block_on(history::rollback(file, a)),
        Command::History(a) => history::history(file, a),
        Command::Status(a) => runtime()?.block_on(cluster::status(file, a.json)),
        Command::Destroy(a) => runtime()?.block_on(cluster::destroy(file, a)),
        Command::Build => runtime()?.block_on(cluster::build(file)),
        Command::Verify(a) => runtime()?.block_on(verify::verify(file, a)),
        Command::Logs(a) => runtime()?.block_on(logs::logs(file, a)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Loads the file; on validation errors prints them (text on stderr, or JSON on
/// stdout) and returns None.
pub fn load_or_report(file: &Path, json_out: bool) -> anyhow::Result<Option<Loaded>> {
    match config::load(file) {
        Ok(l) => Ok(Some(l)),
        Err(config::LoadError::Invalid { report }) => {
            if json_out {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "ok": false,
                        "file": file.display().to_string(),
                        "diagnostics": report.json(),
                    }))?
                );
            } else {
                eprint!("{report}");
                let n = report.errors().count();
                eprintln!(
                    "\n{}: {n} error{} — nothing was changed",
                    file.display(),
                    if n == 1 { "" } else { "s" }
                );
            }
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}
