//! `strata login [-u USER] [-p PASS | --password-stdin] [REGISTRY]`: check
//! credentials against a registry, then remember them (Docker's
//! config.json format, mode 0600, or the configured credential helper).

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::settings::Settings;
use crate::registry::auth::Secret;
use crate::registry::credentials::Credential;
use crate::registry::flags::RegistryFlags;
use crate::registry::login::{login, registry_argument};

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    username: Option<String>,
    /// Password (visible to other users of this machine: prefer --password-stdin)
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<Secret>,
    /// Take the password from stdin
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    registry: RegistryFlags,
    /// The registry [default: docker.io]
    #[arg(value_name = "REGISTRY")]
    server: Option<String>,
}

pub fn run(_settings: &Settings, args: &LoginArgs) -> Result<ExitCode> {
    let registry = registry_argument(args.server.as_deref());
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let username = match &args.username {
        Some(u) => u.clone(),
        None if args.password_stdin => bail!("--password-stdin needs --username"),
        None => prompt("Username: ")?,
    };
    if username.is_empty() {
        bail!("login to {registry}: the username is empty");
    }
    let password = match (&args.password, args.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            io::stdin()
                .read_to_string(&mut s)
                .context("reading the password from stdin")?;
            Secret::new(s.trim_end_matches(['\n', '\r']))
        }
        (None, false) => Secret::new(prompt_hidden("Password: ")?),
    };
    if password.is_empty() {
        bail!("login to {registry}: the password is empty");
    }
    let cred = Credential {
        username,
        secret: password,
    };
    login(&registry, &cred, &args.registry)
        .with_context(|| format!("login to {registry} failed"))?;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

fn prompt(label: &str) -> Result<String> {
    if !io::stdin().is_terminal() {
        bail!("no terminal to ask for credentials: pass --username and --password-stdin");
    }
    eprint!("{label}");
    io::stderr().flush()?;
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Read a line from the terminal with echo off, restoring it after.
fn prompt_hidden(label: &str) -> Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    if !io::stdin().is_terminal() {
        bail!("no terminal to ask for the password: pass --password-stdin");
    }
    let stdin = io::stdin();
    let saved = tcgetattr(&stdin).context("reading the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning off echo")?;
    eprint!("{label}");
    io::stderr().flush()?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    // Echo must come back whatever happened to the read.
    let restored = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    read?;
    restored.context("restoring the terminal settings")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
