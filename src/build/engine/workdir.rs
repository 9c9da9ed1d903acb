//! The WORKDIR executor, as Docker's BuildKit: the config takes the path
//! ([`workdir`]: absolute as written, relative joined) and, unless it is
//! `/`, the directory is made in a layer of its own, every time (relative
//! ones too, whether or not a RUN follows), owned by the USER in effect. A
//! directory that exists is left as it is: the layer is then empty, as in
//! Docker's image.

use strata_parser::instructions::UserGroup;
use strata_parser::{Instruction, Step};

use super::container::WorkingContainer;
use super::copy::resolve_chown;
use super::stage::StageState;
use super::{meta, Build, Done};
use crate::build::cache::Entry;
use crate::build::config_steps::workdir;
#[cfg(doc)]
use crate::build::copy::chown_ids;
use crate::build::copy::make_dir;
use crate::build::error::StepFailure;
use crate::build::key::{self, Op};

pub(super) fn execute(
    b: &Build,
    state: &mut StageState,
    step: &Step,
    instruction: &Instruction,
) -> Result<Done, StepFailure> {
    let Instruction::Workdir(dir) = instruction else {
        return Err(StepFailure::NotHere(instruction.keyword()));
    };
    let rc = state.config().config.as_ref();
    let current = rc.and_then(|c| c.working_dir.as_deref()).unwrap_or("/");
    let path = workdir(current, dir);
    // BuildKit compares the path as written: only `/` itself makes no layer.
    if path == "/" {
        return meta::config(b, state, step, instruction);
    }
    let user = rc.and_then(|c| c.user.clone()).unwrap_or_default();
    let key = key::key(state.parent(), &Op::Workdir { path: &path });
    if let Some(id) = b.lookup_image(&key) {
        return Ok(Done::Cached(id));
    }
    b.may_execute()?;
    let c = WorkingContainer::create(
        b.store,
        b.stand_on(state)?,
        vec!["WORKDIR".into()],
        b.driver(),
    )?;
    {
        let root = c.mount()?;
        let owner = resolve_chown(root.path(), &user_group(&user))
            .map_err(|source| StepFailure::User { spec: user, source })?;
        make_dir(root.path(), &path, owner.unwrap_or((0, 0)))?;
    }
    state.editor.apply(step, instruction)?;
    let created_by = format!("/bin/sh -c #(nop) {}", step.raw.original.trim());
    let done = b.commit_layer(state, &c, created_by)?;
    if let Done::Built { id, .. } = &done {
        b.record(&key, &Entry::Image(id.clone()));
    }
    Ok(done)
}

/// The config's `User` as `--chown` takes it: BuildKit makes a WORKDIR
/// for the ids `COPY --chown=<User>` gives ([`chown_ids`]), failing where
/// it fails (a name in an image without /etc/passwd or /etc/group).
fn user_group(user: &str) -> UserGroup {
    match user.split_once(':') {
        Some((u, g)) => UserGroup {
            user: u.to_string(),
            group: Some(g.to_string()),
        },
        None => UserGroup {
            user: user.to_string(),
            group: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::user_group;
    use crate::build::copy::chown_ids;

    #[test]
    fn owner_as_buildkit() {
        let passwd = "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n\
                      app:x:1000:300::/home/app:/bin/sh\n";
        let groups = "root:x:0:\nnogroup:x:65534:\nstaff:x:300:\n";
        // Taken from Docker BuildKit (docker.io 20.10), the owner of the
        // directory `USER <user>` then `WORKDIR /new` makes.
        for (user, want) in [
            ("", (0, 0)),
            ("1000", (1000, 1000)), // not app's group 300: a number is uid:uid
            ("1000:2000", (1000, 2000)),
            ("nobody", (65534, 65534)),
            ("nobody:nogroup", (65534, 65534)),
            ("app", (1000, 300)),
            ("ghost", (0, 0)),      // unknown user: root
            ("1:ghostgrp", (1, 1)), // unknown group: the user's gid
            ("app:staff", (1000, 300)),
        ] {
            let ids = chown_ids(&user_group(user), passwd, groups);
            assert_eq!(ids.map(|o| o.unwrap_or((0, 0))), Ok(want), "USER {user}");
        }
    }
}
