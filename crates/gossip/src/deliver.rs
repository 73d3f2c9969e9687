//! How the broadcast handler hands on what it sees for the first time (a user event, a
//! query, a suspicion confirmation). foca calls the handler from inside `handle_data` and
//! keeps it to itself afterwards, so each part gets a sink when it is built: the agent's
//! sinks forward to its tasks, an [`Inbox`] keeps items until its owner takes them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// Where a first sighting goes.
pub type Deliver<T> = Box<dyn FnMut(T) + Send + Sync>;

/// A sink whose items wait, in order, until they are taken.
pub struct Inbox<T>(Arc<Mutex<VecDeque<T>>>);

impl<T> Default for Inbox<T> {
    fn default() -> Self {
        Inbox(Arc::default())
    }
}

impl<T> Clone for Inbox<T> {
    fn clone(&self) -> Self {
        Inbox(self.0.clone())
    }
}

impl<T: Send + 'static> Inbox<T> {
    pub fn sink(&self) -> Deliver<T> {
        let inbox = self.clone();
        Box::new(move |item| inbox.lock().push_back(item))
    }

    pub fn push(&self, item: T) {
        self.lock().push_back(item);
    }

    /// Everything delivered since the last take, oldest first.
    pub fn take(&self) -> Vec<T> {
        self.lock().drain(..).collect()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        // Pushing and draining cannot leave the queue half changed.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
