//! Runs a build's stages in dependency order, independent ones at once, on
//! up to `--jobs` threads. With one job the stages run one after the other
//! in the plan's order, as before there was a scheduler.
//!
//! A stage starts once every stage it depends on is done, with their
//! results. The first failure cancels the build: no stage starts after it,
//! the running ones see [`Cancel::is_set`] between their steps, and the
//! hook given to [`run`] stops what they run now (their containers). The
//! scheduler waits for all of them to end, so their guards have removed
//! their containers and mounts before the error goes up; the error is the
//! first one, not the failures the cancelling caused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

/// A stage to run: its key (the stage's index in the Dockerfile) and the
/// keys it needs first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: usize,
    pub deps: BTreeSet<usize>,
}

/// Says a build was cancelled by a failure elsewhere.
#[derive(Debug, Default)]
pub struct Cancel(AtomicBool);

impl Cancel {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Whether `nodes` can have two stages running at once with `jobs`: some
/// stage is not ordered before or after another. Then a build's lines say
/// which stage they are of.
pub fn can_overlap(nodes: &[Node], jobs: usize) -> bool {
    if jobs < 2 {
        return false;
    }
    let reach = ancestors(nodes);
    nodes.iter().enumerate().any(|(i, a)| {
        nodes[i + 1..]
            .iter()
            .any(|b| !reach[&b.id].contains(&a.id) && !reach[&a.id].contains(&b.id))
    })
}

/// Every node's transitive dependencies.
fn ancestors(nodes: &[Node]) -> BTreeMap<usize, BTreeSet<usize>> {
    let mut reach: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    // Nodes come after their dependencies, so one pass in order is enough.
    for n in nodes {
        let mut all = n.deps.clone();
        for d in &n.deps {
            all.extend(reach.get(d).into_iter().flatten().copied());
        }
        reach.insert(n.id, all);
    }
    reach
}

/// A node's work: its id and the results of the nodes done so far.
pub type Work<'a, T, E> = dyn Fn(usize, &BTreeMap<usize, T>) -> Result<T, E> + Sync + 'a;

/// What the workers share.
struct State<T, E> {
    done: BTreeMap<usize, T>,
    started: BTreeSet<usize>,
    running: usize,
    error: Option<E>,
}

/// Runs `work` for every node, each after its dependencies, up to `jobs`
/// at once; `work` gets the node's id and the results of the nodes done so
/// far (every dependency among them). On the first error `on_cancel` is
/// called once (to stop what other stages are running) and that error is
/// returned once every started node has ended.
pub fn run<T, E>(
    nodes: &[Node],
    jobs: usize,
    cancel: &Cancel,
    on_cancel: &(dyn Fn() + Sync),
    work: &Work<'_, T, E>,
) -> Result<BTreeMap<usize, T>, E>
where
    T: Clone + Send,
    E: Send,
{
    let shared = Mutex::new(State {
        done: BTreeMap::new(),
        started: BTreeSet::new(),
        running: 0,
        error: None,
    });
    let wake = Condvar::new();
    let workers = jobs.clamp(1, nodes.len().max(1));
    std::thread::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(|| worker(nodes, cancel, on_cancel, work, &shared, &wake));
        }
        // This thread works too: with one job nothing else is started.
        worker(nodes, cancel, on_cancel, work, &shared, &wake);
    });
    let state = shared.into_inner().unwrap_or_else(|e| e.into_inner());
    match state.error {
        Some(e) => Err(e),
        None => Ok(state.done),
    }
}

fn worker<T: Clone, E>(
    nodes: &[Node],
    cancel: &Cancel,
    on_cancel: &(dyn Fn() + Sync),
    work: &Work<'_, T, E>,
    shared: &Mutex<State<T, E>>,
    wake: &Condvar,
) {
    let lock = || shared.lock().unwrap_or_else(|e| e.into_inner());
    let mut state = lock();
    loop {
        if cancel.is_set() || state.started.len() == nodes.len() {
            break;
        }
        let ready = nodes.iter().find(|n| {
            !state.started.contains(&n.id) && n.deps.iter().all(|d| state.done.contains_key(d))
        });
        let Some(node) = ready else {
            if state.running == 0 {
                // Nothing runs and nothing can start: a dependency that is
                // not in the plan. The plan never makes one.
                break;
            }
            state = wake.wait(state).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        state.started.insert(node.id);
        state.running += 1;
        let done = state.done.clone();
        drop(state);
        let result = work(node.id, &done);
        state = lock();
        state.running -= 1;
        match result {
            Ok(value) => {
                state.done.insert(node.id, value);
            }
            Err(e) if state.error.is_none() => {
                state.error = Some(e);
                cancel.set();
                on_cancel();
            }
            // A failure the cancelling caused: the first error says why.
            Err(_) => {}
        }
        wake.notify_all();
    }
    wake.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    fn node(id: usize, deps: &[usize]) -> Node {
        Node {
            id,
            deps: deps.iter().copied().collect(),
        }
    }

    /// How a stage of these tests fails: on its own, or stopped.
    #[derive(Debug, PartialEq, Eq)]
    enum Failed {
        Own(usize),
        Cancelled,
    }

    /// a, b independent; c needs both.
    fn diamond() -> Vec<Node> {
        vec![node(0, &[]), node(1, &[]), node(2, &[0, 1])]
    }

    #[test]
    fn one_job_keeps_the_plans_order() {
        let order = Mutex::new(Vec::new());
        let work = |id: usize, _: &BTreeMap<usize, usize>| -> Result<usize, ()> {
            order.lock().unwrap().push(id);
            Ok(id)
        };
        let done = run(&diamond(), 1, &Cancel::default(), &|| {}, &work).unwrap();
        assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
        assert_eq!(done.len(), 3);
    }

    #[test]
    fn independent_stages_overlap_and_a_stage_sees_its_deps() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let work = |id: usize, done: &BTreeMap<usize, usize>| -> Result<usize, ()> {
            if id == 2 {
                assert!(done.contains_key(&0) && done.contains_key(&1));
            }
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(id * 10)
        };
        let done = run(&diamond(), 2, &Cancel::default(), &|| {}, &work).unwrap();
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(done[&2], 20);
    }

    #[test]
    fn a_failure_cancels_the_rest_and_is_the_error() {
        let cancel = Cancel::default();
        let hooks = AtomicUsize::new(0);
        let third_ran = AtomicBool::new(false);
        let work = |id: usize, _: &BTreeMap<usize, ()>| -> Result<(), Failed> {
            match id {
                0 => Err(Failed::Own(0)),
                1 => {
                    // Runs until cancelled, as a stage checks between steps.
                    while !cancel.is_set() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(Failed::Cancelled)
                }
                _ => {
                    third_ran.store(true, Ordering::SeqCst);
                    Ok(())
                }
            }
        };
        let on_cancel = || {
            hooks.fetch_add(1, Ordering::SeqCst);
        };
        let err = run(&diamond(), 2, &cancel, &on_cancel, &work).unwrap_err();
        assert_eq!(err, Failed::Own(0));
        assert_eq!(hooks.load(Ordering::SeqCst), 1);
        assert!(!third_ran.load(Ordering::SeqCst));
    }

    #[test]
    fn overlap_needs_two_jobs_and_two_unordered_stages() {
        assert!(can_overlap(&diamond(), 2));
        assert!(!can_overlap(&diamond(), 1));
        let chain = [node(0, &[]), node(1, &[0]), node(2, &[1])];
        assert!(!can_overlap(&chain, 4));
        assert!(!can_overlap(&[node(0, &[])], 4));
    }
}
