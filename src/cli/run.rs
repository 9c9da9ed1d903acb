//! `strata run`: a new container over an image, in the foreground.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::images::open_store;
use super::settings::Settings;
use crate::container::{self, run::RunOptions, NewContainer};
use crate::sandbox::driver::DriverKind;
use crate::sandbox::spawn::{Input, Output};
use crate::sandbox::spec::{Bind, Mount, Network};
use crate::store::{RunConfig, Store};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    extras: Box<super::extras_flags::ExtrasFlags>,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Keep STDIN open
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to pass the host's)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Network: the host's, or none (loopback only)
    #[arg(long, value_enum, default_value_t = Network::Host)]
    network: Network,
    /// Isolation: default (the best that works here; see strata info), or a rung: rootless, root, nested, chroot
    #[arg(long, value_enum, env = "STRATA_ISOLATION")]
    pub(super) isolation: Option<crate::sandbox::ladder::IsolationFlag>,
    /// Bind mount a volume (HOST:CONTAINER[:ro])
    #[arg(short, long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    volume: Vec<String>,
    /// Run the image's OS/ARCH[/VARIANT] (pulled for it if the store lacks it)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<crate::platform::Platform>,
    /// The image to run
    image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub fn run(settings: &Settings, args: &RunArgs) -> Result<ExitCode> {
    // stdout belongs to the container: an automatic pull shows on stderr.
    crate::progress::configure(crate::progress::Config {
        quiet: false,
        transfers: crate::progress::Stream::Stderr,
        stdout_to_stderr: false,
        ..Default::default()
    });
    let store = open_store(settings)?;
    // A reference the store lacks is pulled first, as `docker run` does.
    let flags = crate::registry::flags::RegistryFlags::default();
    let image = match &args.platform {
        Some(p) => {
            crate::registry::pull::resolve_or_pull_for(&store, &args.image, p, &flags, false)?
        }
        None => crate::registry::pull::resolve_or_pull(&store, &args.image, &flags, false)?,
    };
    let config = store.config(&image)?;
    runnable(&config)?;
    let config = config.config.unwrap_or_default();
    let argv = command_line(&config, args.entrypoint.as_deref(), &args.command)?;
    let mounts = args
        .volume
        .iter()
        .map(|v| parse_volume(v))
        .collect::<Result<Vec<_>>>()?;
    let mut env = config.env.clone().unwrap_or_default();
    for e in &args.env {
        match e.split_once('=') {
            Some(_) => env.push(e.clone()),
            // `-e KEY` passes the host's value, and nothing if unset.
            None => {
                if let Ok(v) = std::env::var(e) {
                    env.push(format!("{e}={v}"));
                }
            }
        }
    }
    // Docker gives a terminal TERM=xterm unless the image or -e set one.
    if args.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let options = RunOptions {
        args: argv.clone(),
        env,
        user: args
            .user
            .clone()
            .or(config.user.clone())
            .unwrap_or_default(),
        workdir: args
            .workdir
            .clone()
            .or(config.working_dir.clone())
            .unwrap_or_default(),
        workdir_for_user: false,
        network: args.network,
        mounts,
        tty: args.tty,
        extras: args.extras.resolve()?,
        input: if args.interactive {
            Input::Inherit
        } else {
            Input::Null
        },
        output: Output::Inherit,
    };
    let code = run_in_new_container(
        &store,
        settings,
        &image,
        &args.image,
        args.name.as_deref(),
        options,
        args.rm,
    )?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)))
}

/// An image of a platform this machine cannot run (no binfmt_misc
/// handler for it) is refused with the fix, before any container exists.
fn runnable(config: &crate::store::ImageConfig) -> Result<()> {
    use crate::platform::{self, Runnable};
    let p = platform::of_config(config);
    if let Runnable::No { reason } = platform::runnable(&p) {
        bail!(
            "the image is for {}, which this machine cannot run: {reason}; to emulate it, {}",
            platform::show(&p),
            platform::fix(&p)
        );
    }
    Ok(())
}

/// Creates a container and runs `options` in it, falling back from kernel
/// overlay to fuse-overlayfs when the former cannot mount and no driver was
/// asked for.
pub(super) fn run_in_new_container(
    store: &Store,
    settings: &Settings,
    image: &crate::digest::ImageId,
    image_name: &str,
    name: Option<&str>,
    options: RunOptions,
    remove: bool,
) -> Result<i32> {
    let driver = settings.storage_driver.unwrap_or_else(DriverKind::first);
    let mut c = container::create(
        store,
        NewContainer {
            image: image.clone(),
            image_name,
            name,
            command: options.args.clone(),
            driver,
            owned: remove,
        },
    )?;
    let mut outcome = container::run::run(store, &mut c, options.clone());
    // Not forced: the next driver in line when one cannot mount here.
    for fallback in [DriverKind::FuseOverlayfs, DriverKind::Vfs] {
        if settings.storage_driver.is_some()
            || !matches!(outcome, Err(container::run::RunError::Mount(_)))
        {
            break;
        }
        crate::log::info(&format!(
            "{} could not mount here; trying {fallback}",
            c.state.driver
        ));
        c.state.driver = fallback;
        c.save()?;
        outcome = container::run::run(store, &mut c, options.clone());
    }
    if remove {
        container::remove(store, &c.state.id, true).context("removing the container (--rm)")?;
    }
    Ok(outcome?)
}

/// ENTRYPOINT + CMD as Docker composes them: `--entrypoint` replaces the
/// image's entrypoint (and drops its CMD); arguments replace CMD.
fn command_line(
    config: &RunConfig,
    entrypoint: Option<&str>,
    command: &[String],
) -> Result<Vec<String>> {
    let (entry, default_cmd) = match entrypoint {
        Some("") => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.to_string()], Vec::new()),
        None => (
            config.entrypoint.clone().unwrap_or_default(),
            config.cmd.clone().unwrap_or_default(),
        ),
    };
    let cmd = if command.is_empty() {
        default_cmd
    } else {
        command.to_vec()
    };
    let argv: Vec<String> = entry.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        bail!("no command specified: the image has no CMD or ENTRYPOINT, and none was given");
    }
    Ok(argv)
}

fn parse_volume(spec: &str) -> Result<Mount> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, target, readonly) = match parts.as_slice() {
        [h, t] => (*h, *t, false),
        [h, t, "ro"] => (*h, *t, true),
        [h, t, "rw"] => (*h, *t, false),
        _ => bail!("invalid volume {spec:?}: expected HOST:CONTAINER[:ro]"),
    };
    if !target.starts_with('/') {
        bail!("invalid volume {spec:?}: the container path must be absolute");
    }
    let source = fs_err::canonicalize(host).with_context(|| format!("volume source {host}"))?;
    Ok(Mount::Bind(Bind {
        source,
        within: None,
        target: target.to_string(),
        readonly,
        optional: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_and_cmd_compose_like_docker() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let config = RunConfig {
            entrypoint: Some(s(&["/entry"])),
            cmd: Some(s(&["default"])),
            ..RunConfig::default()
        };
        assert_eq!(
            command_line(&config, None, &[]).unwrap(),
            s(&["/entry", "default"])
        );
        assert_eq!(
            command_line(&config, None, &s(&["x"])).unwrap(),
            s(&["/entry", "x"])
        );
        assert_eq!(command_line(&config, Some("sh"), &[]).unwrap(), s(&["sh"]));
        assert_eq!(
            command_line(&config, Some(""), &s(&["id"])).unwrap(),
            s(&["id"])
        );
        assert!(command_line(&RunConfig::default(), None, &[]).is_err());
    }

    #[test]
    fn volumes_parse() {
        assert!(matches!(
            parse_volume("/tmp:/data:ro").unwrap(),
            Mount::Bind(Bind { readonly: true, .. })
        ));
        assert!(parse_volume("/tmp:data").is_err());
        assert!(parse_volume("/tmp:/d:xx").is_err());
    }
}
