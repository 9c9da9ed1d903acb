//! A step's working container, owned by a guard: removed when the step is
//! done, whatever happened (a hit never makes one).

use crate::container::run::{self, MountedRoot, RunError};
use crate::container::{self, Container, ContainerError, NewContainer};
use crate::digest::ImageId;
use crate::sandbox::driver::DriverKind;
use crate::store::Store;

pub(super) struct WorkingContainer<'s> {
    store: &'s Store,
    pub c: Container,
}

impl<'s> WorkingContainer<'s> {
    pub fn create(
        store: &'s Store,
        image: ImageId,
        command: Vec<String>,
        driver: DriverKind,
    ) -> Result<WorkingContainer<'s>, ContainerError> {
        let c = container::create(
            store,
            NewContainer {
                image: image.clone(),
                image_name: "strata-build",
                name: None,
                command,
                driver,
                owned: true,
            },
        )?;
        crate::log::debug(&format!(
            "build container {} created on {}",
            c.short_id(),
            image.short()
        ));
        Ok(WorkingContainer { store, c })
    }

    /// Its root file system, mounted until the guard is dropped.
    pub fn mount(&self) -> Result<MountedRoot, RunError> {
        run::mount_rootfs(self.store, &self.c)
    }
}

impl Drop for WorkingContainer<'_> {
    fn drop(&mut self) {
        if let Err(e) = container::remove(self.store, &self.c.state.id, true) {
            // A leftover costs disk space only; prune removes it.
            crate::progress::warn(format!(
                "removing build container {}: {e}",
                self.c.short_id()
            ));
        }
    }
}
