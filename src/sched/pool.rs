//! A fixed pool of CPU threads that runs *actors*: a stage of one session (a source that
//! demuxes, decodes and scales; one rendition's encoder and muxer) with its own state and
//! inbox. An actor is woken when it has something to do; a woken actor sits at most once in
//! the pool's run queue (a bounded, lock-free crossbeam channel), so queuing never allocates
//! and the run queue can never grow past the number of live actors.
//!
//! An actor runs until it has nothing left to do or has used its time slice, then yields the
//! thread to the next queued actor. Stages of different sessions and segments therefore
//! overlap on every core, and no core idles while any actor has work.

use crossbeam::channel::{bounded, Receiver, Sender};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What one call to [`Task::step`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Did some work; there may be more right away.
    More,
    /// Nothing to do until something wakes the actor again.
    Idle,
}

/// The state and behaviour of one actor. `step` does a bounded piece of work (one packet, one
/// frame) and must never block on another actor.
pub trait Task: Send + 'static {
    fn step(&mut self) -> Step;
}

/// Something that can be woken (an actor, type-erased).
pub trait Wake: Send + Sync {
    fn wake_arc(self: Arc<Self>);
}

/// Wakes the actor behind a weak handle, if it is still alive.
pub fn wake(w: &Weak<dyn Wake>) {
    if let Some(a) = w.upgrade() {
        a.wake_arc();
    }
}

/// How long an actor keeps a thread while others wait.
const SLICE: Duration = Duration::from_millis(4);

trait Runnable: Send + Sync {
    fn run(self: Arc<Self>);
}

type Queued = Option<Arc<dyn Runnable>>;

struct Shared {
    tx: Sender<Queued>,
    live_actors: AtomicUsize,
    capacity: usize,
}

/// A pool of `threads` worker threads. Dropping it stops the threads once queued work is done.
pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// A handle actors use to queue themselves on the pool.
#[derive(Clone)]
pub struct PoolHandle(Arc<Shared>);

impl Pool {
    /// Starts `threads` threads (at least one). `max_actors` bounds the live actors, and so the
    /// run queue.
    pub fn new(threads: usize, max_actors: usize) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = bounded::<Queued>(max_actors + threads);
        let shared = Arc::new(Shared {
            tx,
            live_actors: AtomicUsize::new(0),
            capacity: max_actors,
        });
        let threads = (0..threads)
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("gpuworker-cpu{i}"))
                    .spawn(move || worker(rx))
                    .expect("spawn pool thread")
            })
            .collect();
        Pool { shared, threads }
    }

    pub fn handle(&self) -> PoolHandle {
        PoolHandle(self.shared.clone())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for _ in &self.threads {
            let _ = self.shared.tx.send(None);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn worker(rx: Receiver<Queued>) {
    while let Ok(Some(actor)) = rx.recv() {
        actor.run();
    }
}

/// A task bound to a pool. Clone the `Arc` to keep it alive; [`Actor::waker`] gives a weak
/// handle for other actors, so that actors pointing at each other never form a cycle.
pub struct Actor<T: Task> {
    task: Mutex<T>,
    /// In the run queue or running.
    scheduled: AtomicBool,
    /// Woken since the current run began.
    notified: AtomicBool,
    pool: PoolHandle,
}

/// Too many actors for the pool's run queue.
#[derive(Debug, thiserror::Error)]
#[error("the worker's stage pool is full ({0} actors)")]
pub struct PoolFull(pub usize);

impl<T: Task> Actor<T> {
    pub fn spawn(pool: &PoolHandle, task: T) -> Result<Arc<Self>, PoolFull> {
        let live = pool.0.live_actors.fetch_add(1, SeqCst);
        if live >= pool.0.capacity {
            pool.0.live_actors.fetch_sub(1, SeqCst);
            return Err(PoolFull(pool.0.capacity));
        }
        Ok(Arc::new(Actor {
            task: Mutex::new(task),
            scheduled: AtomicBool::new(false),
            notified: AtomicBool::new(false),
            pool: pool.clone(),
        }))
    }

    /// A weak, type-erased handle that wakes this actor.
    pub fn waker(self: &Arc<Self>) -> Weak<dyn Wake> {
        let weak: Weak<Self> = Arc::downgrade(self);
        weak
    }

    /// Queues the actor unless it is already queued or running (then it runs again).
    pub fn wake(self: &Arc<Self>) {
        self.notified.store(true, SeqCst);
        if !self.scheduled.swap(true, SeqCst) {
            self.queue();
        }
    }

    fn queue(self: &Arc<Self>) {
        let me: Arc<dyn Runnable> = self.clone();
        // Cannot block for long: the channel holds every live actor once.
        let _ = self.pool.0.tx.send(Some(me));
    }

    /// Runs `f` on the task's state (for reading results; never while the pool runs it long).
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.task.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<T: Task> Wake for Actor<T> {
    fn wake_arc(self: Arc<Self>) {
        self.wake();
    }
}

impl<T: Task> Runnable for Actor<T> {
    fn run(self: Arc<Self>) {
        let started = Instant::now();
        loop {
            self.notified.store(false, SeqCst);
            let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
            let mut idle = false;
            while !idle {
                idle = task.step() == Step::Idle;
                if !idle && started.elapsed() >= SLICE {
                    // Time slice used: go to the back of the run queue, still scheduled.
                    drop(task);
                    self.queue();
                    return;
                }
            }
            drop(task);
            self.scheduled.store(false, SeqCst);
            if !self.notified.load(SeqCst) || self.scheduled.swap(true, SeqCst) {
                return;
            }
        }
    }
}

impl<T: Task> Drop for Actor<T> {
    fn drop(&mut self) {
        self.pool.0.live_actors.fetch_sub(1, SeqCst);
    }
}
