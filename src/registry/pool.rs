//! A few worker threads over a queue of blob transfers: parallel enough to
//! overlap network waits, bounded so a registry is not flooded (Docker
//! uses 3). The first error stops workers from taking new items.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Run `work` on every item with at most `jobs` threads; the results in
/// completion order, or the first error.
pub fn run<T, R, E, F>(items: VecDeque<T>, jobs: usize, work: F) -> Result<Vec<R>, E>
where
    T: Send,
    R: Send,
    E: Send,
    F: Fn(T) -> Result<R, E> + Sync,
{
    let queue = Mutex::new(items);
    let done = Mutex::new(Vec::new());
    let failed: Mutex<Option<E>> = Mutex::new(None);
    let next = || {
        // A poisoned lock means a worker panicked: take no more work.
        if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
            return None;
        }
        queue.lock().ok()?.pop_front()
    };
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                while let Some(item) = next() {
                    match work(item) {
                        Ok(r) => done.lock().unwrap_or_else(|e| e.into_inner()).push(r),
                        Err(e) => {
                            failed
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(done.into_inner().unwrap_or_else(|e| e.into_inner())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_items_run_once() {
        let items: VecDeque<u32> = (0..20).collect();
        let mut got: Vec<u32> = run(items, 3, |i| Ok::<u32, ()>(i * 2)).unwrap();
        got.sort();
        assert_eq!(got, (0..20).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn first_error_is_returned() {
        let items: VecDeque<u32> = (0..10).collect();
        let r = run(items, 2, |i| {
            if i == 4 {
                Err(format!("bad {i}"))
            } else {
                Ok(i)
            }
        });
        assert_eq!(r, Err("bad 4".to_string()));
        let empty: VecDeque<u32> = VecDeque::new();
        assert_eq!(run(empty, 0, Ok::<u32, ()>), Ok(vec![]));
    }
}
