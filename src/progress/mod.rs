//! The one printer. Library code never prints: it emits an [`Event`] with
//! [`emit`] (or the shorthands [`warn`], [`notice`]), and the sink the
//! command line installed decides what reaches the terminal. The default
//! sink is a [`Printer`] with Docker's output: build steps and pull/push
//! lines as `docker build` and `docker pull` print them, indicatif bars
//! for transfers on a terminal, warnings and logs on stderr.
//!
//! The sink is process-wide because the terminal is: every thread of a
//! build (parallel pulls, and later parallel stages) writes to the same one.
//! This module (with `src/cli`) is the only place allowed to print.

mod events;
mod live;
mod meter;
mod printer;
mod transfer;

use std::sync::{Arc, OnceLock, RwLock};

use crate::digest::Digest;

pub use events::{Event, LayerStatus, LogLevel, StepId, StepLayer, StepWork, Transfer};
pub use meter::{ByteMeter, Meter, Metered, METER_MIN_BYTES};
pub use printer::{Config, Printer, Progress, Stream};

/// Where events go: the terminal printer, or any other renderer.
pub trait Sink: Send + Sync {
    fn emit(&self, event: &Event);

    /// Whether a step's process output should come as
    /// [`Event::StepOutput`] rather than straight to the terminal.
    fn captures_output(&self) -> bool {
        false
    }
}

/// Every event to each of its sinks in turn (the printer and a build's
/// report).
pub struct Tee(pub Vec<Arc<dyn Sink>>);

impl Sink for Tee {
    fn emit(&self, event: &Event) {
        for sink in &self.0 {
            sink.emit(event);
        }
    }

    fn captures_output(&self) -> bool {
        self.0.iter().any(|s| s.captures_output())
    }
}

static SINK: RwLock<Option<Arc<dyn Sink>>> = RwLock::new(None);

/// Sends every later event to `sink`.
pub fn install(sink: Arc<dyn Sink>) {
    // A poisoned lock only means a thread panicked mid-swap; the slot is
    // still a valid Option.
    *SINK.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
}

/// Installs a terminal [`Printer`] with `config` (the CLI does this once
/// per command, from `-q` and from whose stream pull lines use).
pub fn configure(config: Config) {
    install(Arc::new(Printer::new(config)));
}

/// Installs a terminal [`Printer`] with `config`, and `also` beside it.
pub fn configure_with(config: Config, also: Arc<dyn Sink>) {
    install(Arc::new(Tee(vec![Arc::new(Printer::new(config)), also])));
}

/// Shows `event` through the installed sink (a default printer if none).
pub fn emit(event: Event) {
    let sink = SINK.read().unwrap_or_else(|e| e.into_inner()).clone();
    match sink {
        Some(sink) => sink.emit(&event),
        None => default_printer().emit(&event),
    }
}

/// Whether the installed sink wants process output as events.
pub fn captures_output() -> bool {
    let sink = SINK.read().unwrap_or_else(|e| e.into_inner()).clone();
    sink.is_some_and(|s| s.captures_output())
}

fn default_printer() -> &'static Printer {
    static DEFAULT: OnceLock<Printer> = OnceLock::new();
    DEFAULT.get_or_init(|| Printer::new(Config::default()))
}

/// `strata: warning: {message}` on stderr.
pub fn warn(message: impl Into<String>) {
    emit(Event::Warning {
        message: message.into(),
    });
}

/// A line on stderr as it is, even when quiet.
pub fn notice(text: impl Into<String>) {
    emit(Event::Notice { text: text.into() });
}

/// A line of a pull or push (`Digest: …`).
pub fn transfer_line(text: impl Into<String>) {
    emit(Event::TransferLine { text: text.into() });
}

/// The status of one layer of a pull or push.
pub fn layer_status(layer: &Digest, status: LayerStatus) {
    emit(Event::LayerStatus {
        layer: layer.clone(),
        status,
    });
}

/// Bytes of `layer` moved so far, of `total` if known.
pub fn layer_bytes(layer: &Digest, action: Transfer, done: u64, total: Option<u64>) {
    emit(Event::LayerBytes {
        layer: layer.clone(),
        action,
        done,
        total,
    });
}

/// `layer`'s blob is being made (a push, `save`, a build output): its
/// status when it starts (`done` 0), then the compressed bytes so far
/// (the final size is known only at the end).
pub fn compressing(layer: &Digest, done: u64) {
    match done {
        0 => layer_status(layer, LayerStatus::Compressing),
        n => layer_bytes(layer, Transfer::Compress, n, None),
    }
}

/// Compressed bytes between two [`compressing`] reports: often enough for
/// a bar to move, rarely enough to cost nothing next to compression.
const COMPRESS_STEP: u64 = 1 << 20;

/// [`compressing`] for the pieces of a blob as they are made (what
/// `Store::layer_blob_with` hands its callback: an empty piece when it
/// starts): the start, then every [`COMPRESS_STEP`] bytes.
pub fn compressing_pieces(layer: &Digest) -> impl FnMut(&[u8]) + '_ {
    let (mut made, mut shown) = (0u64, 0u64);
    move |piece| {
        made += piece.len() as u64;
        if made == 0 || made - shown >= COMPRESS_STEP {
            shown = made;
            compressing(layer, made);
        }
    }
}

/// The pull or push is over (or failed): its lines stay as they are.
pub fn transfers_done() {
    emit(Event::TransfersDone);
}
