//! The threads connections write from.
//!
//! A fan-out round wakes one connection per follower (a thousand for a room
//! of a thousand), and each makes a `send` system call. On the runtime
//! that also runs the reads, the store's round trips, the
//! acknowledgements and the hub, every step of a send waited behind the
//! whole round (a woken task joins the back of the queue), so under load
//! a send spent several rounds reaching the round that delivers it. With
//! connections on threads of their own, the kernel shares the core between
//! the two a time slice at a time, and the send path no longer queues
//! behind the writes it feeds.
//!
//! Each connection's inbound task stays on the gateway's own runtime, and
//! its store reads go there too (`Context::on_home`).

use tokio::runtime::{Builder, Handle, Runtime};

/// A runtime for connection tasks, one thread per core the process may use;
/// stopped when dropped.
pub struct Writers {
    /// `None` once dropped.
    runtime: Option<Runtime>,
}

impl Writers {
    /// Starts the threads.
    pub fn start() -> std::io::Result<Self> {
        let runtime = Builder::new_multi_thread()
            .thread_name("chat-writer")
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Where connection tasks are spawned.
    pub fn handle(&self) -> &Handle {
        self.runtime
            .as_ref()
            .expect("running until dropped")
            .handle()
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        // Not a blocking shutdown: the last reference may go from a task
        // (of either runtime), where waiting for threads is not allowed.
        // Connections left are dropped, as they would be at process exit.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
