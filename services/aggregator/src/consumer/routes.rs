//! Which assigned partitions are read from the fetch queue ([`super::fetch`]) rather than
//! the consumer queue. The rebalance callback routes and unroutes partitions; the loop
//! re-asserts the routes and reads the queue.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::fetch::FetchQueue;
use super::offsets::lock;
use crate::sources::Tp;
use crate::topics::Topics;

/// The fetch queue, if there is one, and the partitions routed to it.
#[derive(Debug, Default)]
pub struct Routes {
    queue: Mutex<Option<Arc<FetchQueue>>>,
    routed: Mutex<HashSet<Tp>>,
}

impl Routes {
    /// Installs the queue assigned partitions are routed to from now on.
    pub fn install(&self, queue: Option<Arc<FetchQueue>>) {
        *lock(&self.queue) = queue;
    }

    /// The queue, if there is one.
    pub fn queue(&self) -> Option<Arc<FetchQueue>> {
        lock(&self.queue).clone()
    }

    /// Whether any partition is routed to the queue.
    pub fn any(&self) -> bool {
        !lock(&self.routed).is_empty()
    }

    /// Forwards `partitions` to the queue, if there is one, and remembers them.
    pub fn route(&self, topics: &Topics, partitions: impl IntoIterator<Item = Tp>) {
        let Some(queue) = self.queue() else {
            return;
        };
        let mut routed = lock(&self.routed);
        for (source, partition) in partitions {
            if queue.route(topics.name(source), partition) {
                routed.insert((source, partition));
            } else {
                // Its messages stay on the consumer queue, where the loop reads them too.
                tracing::warn!(partition, "partition not routed to the fetch queue");
            }
        }
    }

    /// Re-asserts the routes of the routed partitions (see [`super::fetch`]).
    pub fn reroute(&self, topics: &Topics) {
        let Some(queue) = self.queue() else {
            return;
        };
        for (source, partition) in lock(&self.routed).iter() {
            queue.route(topics.name(*source), *partition);
        }
    }

    /// Forgets revoked partitions.
    pub fn unroute(&self, revoked: &[Tp]) {
        lock(&self.routed).retain(|p| !revoked.contains(p));
    }

    /// Drops the queue and every route: the queue belongs to the consumer's client and must go
    /// before it.
    pub fn release(&self) {
        lock(&self.routed).clear();
        drop(lock(&self.queue).take());
    }
}
