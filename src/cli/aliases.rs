//! Docker's management-command spellings: `image ls`, `image rm`, `image
//! inspect`, ... and `container ls`, `container rm`, ..., each the same
//! command as its short form.

use std::process::ExitCode;

use anyhow::Result;

use super::settings::Settings;
use super::{
    build, commit, diff, export, history, images, import, inspect, load, ps, pull, push, rm, rmi,
    run, save, tag,
};

#[derive(Debug, clap::Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ImageCommand {
    /// Build an image from a Dockerfile (`strata build`)
    Build(Box<build::BuildArgs>),
    /// Show the history of an image (`strata history`)
    History(history::HistoryArgs),
    /// Import a rootfs tarball (`strata import`)
    Import(import::ImportArgs),
    /// Display detailed information on images (`strata inspect`)
    Inspect(inspect::InspectArgs),
    /// Load images from a tar archive (`strata load`)
    Load(load::LoadArgs),
    /// List images (`strata images`)
    #[command(visible_alias = "list")]
    Ls(images::ImagesArgs),
    /// Pull an image (`strata pull`)
    Pull(pull::PullArgs),
    /// Push an image (`strata push`)
    Push(push::PushArgs),
    /// Remove images (`strata rmi`)
    #[command(visible_alias = "remove")]
    Rm(rmi::RmiArgs),
    /// Save images to a tar archive (`strata save`)
    Save(save::SaveArgs),
    /// Tag an image (`strata tag`)
    Tag(tag::TagArgs),
}

#[derive(Debug, clap::Args)]
pub struct ContainerArgs {
    #[command(subcommand)]
    command: ContainerCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ContainerCommand {
    /// Create an image from a container's changes (`strata commit`)
    Commit(commit::CommitArgs),
    /// Changes to a container's files (`strata diff`)
    Diff(diff::DiffArgs),
    /// Export a container's file system (`strata export`)
    Export(export::ExportArgs),
    /// List containers (`strata ps`)
    #[command(visible_aliases = ["list", "ps"])]
    Ls(ps::PsArgs),
    /// Remove containers (`strata rm`)
    #[command(visible_alias = "remove")]
    Rm(rm::RmArgs),
    /// Run a command in a new container (`strata run`)
    Run(run::RunArgs),
}

pub fn image(settings: &Settings, args: &ImageArgs) -> Result<ExitCode> {
    match &args.command {
        ImageCommand::Build(a) => build::run(settings, a),
        ImageCommand::History(a) => history::run(settings, a),
        ImageCommand::Import(a) => import::run(settings, a),
        ImageCommand::Inspect(a) => inspect::run(settings, a),
        ImageCommand::Load(a) => load::run(settings, a),
        ImageCommand::Ls(a) => images::run(settings, a),
        ImageCommand::Pull(a) => pull::run(settings, a),
        ImageCommand::Push(a) => push::run(settings, a),
        ImageCommand::Rm(a) => rmi::run(settings, a),
        ImageCommand::Save(a) => save::run(settings, a),
        ImageCommand::Tag(a) => tag::run(settings, a),
    }
}

pub fn container(settings: &Settings, args: &ContainerArgs) -> Result<ExitCode> {
    match &args.command {
        ContainerCommand::Commit(a) => commit::run(settings, a),
        ContainerCommand::Diff(a) => diff::run(settings, a),
        ContainerCommand::Export(a) => export::run(settings, a),
        ContainerCommand::Ls(a) => ps::run(settings, a),
        ContainerCommand::Rm(a) => rm::run(settings, a),
        ContainerCommand::Run(a) => run::run(settings, a),
    }
}
