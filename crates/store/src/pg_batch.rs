//! PostgreSQL: writes of one kind that arrive together are settled in one transaction.
//!
//! On PostgreSQL each statement is a round trip and each commit waits for the WAL flush,
//! and a missed call's writes were ~31 statements and three commits, one call at a time
//! (docs/PERFORMANCE.md). A `Batch` is one task per kind of write that settles one batch
//! at a time: whatever arrived while the previous batch was written, each table's rows for
//! all of it written with one statement. Nothing is acknowledged before that commit, as
//! before. A batch of one is settled alone, as it always was.
//!
//! If the database refuses a batch (a deadlock with another instance, one item it will not
//! take), nothing of it is stored and each item is settled in a transaction of its own, so
//! one bad item fails alone. If the database does not answer, or refuses the connection
//! itself (`StoreError::lost_the_database`), every item of the batch gets the error at
//! once instead of meeting it again, one by one. SQLite needs none of
//! this: its one writer commits what is waiting together already (`sqlite_writer`).

use std::collections::HashSet;
use std::future::Future;
use std::hash::Hash;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::{Result, Store, StoreError};

/// The most items one transaction settles; more wait for the next.
const MAX_BATCH: usize = 128;

/// One kind of write settled in batches.
pub(crate) trait Batched: 'static {
    type Item: Send + 'static;
    type Out: Send + 'static;
    /// The row an item locks first: one item per key in a batch (one statement may not
    /// lock a row twice; the others follow the batch, alone) and the batch's lock order.
    type Key: Ord + Hash + Send;
    /// What an item is, for the log.
    const WHAT: &'static str;

    fn key(item: &Self::Item) -> Self::Key;
    /// Settles `items` (distinct keys, in key order) in one transaction; the outcomes in
    /// their order.
    fn together(
        store: &Store,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Out>>> + Send;
    /// Settles one item in a transaction of its own.
    fn alone(store: &Store, item: &Self::Item) -> impl Future<Output = Result<Self::Out>> + Send;
    /// After a batch committed.
    fn settled(store: &Store, outs: &[Self::Out]);
}

/// The sender's side of a kind's task.
pub(crate) struct Batch<B: Batched> {
    queue: mpsc::UnboundedSender<Pending<B>>,
}

impl<B: Batched> Clone for Batch<B> {
    fn clone(&self) -> Self {
        Batch {
            queue: self.queue.clone(),
        }
    }
}

struct Pending<B: Batched> {
    item: B::Item,
    reply: oneshot::Sender<Result<B::Out>>,
}

impl<B: Batched> Batch<B> {
    /// Starts the task that settles batches on `store` (a store without batches of its
    /// own); it ends when every `Batch` is dropped.
    pub(crate) fn start(store: Store) -> Batch<B> {
        let (queue, mut rx) = mpsc::unbounded_channel::<Pending<B>>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                settle::<B>(&store, batch).await;
            }
        });
        Batch { queue }
    }

    /// Settles `item` with whatever arrives with it.
    pub(crate) async fn submit(&self, item: B::Item) -> Result<B::Out> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Writer(format!("the {} batch stopped", B::WHAT));
        self.queue
            .send(Pending { item, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn settle<B: Batched>(store: &Store, batch: Vec<Pending<B>>) {
    let mut seen = HashSet::new();
    let (mut together, again): (Vec<Pending<B>>, Vec<Pending<B>>) = batch
        .into_iter()
        .partition(|p| seen.insert(B::key(&p.item)));
    // Rows locked in one order by every instance cannot deadlock each other.
    together.sort_by_key(|p| B::key(&p.item));
    let alone = if together.len() < 2 {
        together
    } else {
        let (items, replies): (Vec<B::Item>, Vec<_>) =
            together.into_iter().map(|p| (p.item, p.reply)).unzip();
        match B::together(store, &items).await {
            Ok(outs) => {
                B::settled(store, &outs);
                for (reply, out) in replies.into_iter().zip(outs) {
                    let _gone = reply.send(Ok(out));
                }
                Vec::new()
            }
            Err(e @ StoreError::Database(sqlx::Error::Database(_))) if !e.lost_the_database() => {
                tracing::warn!(error = %e, items = items.len(), "a batch of {} was refused; settling each alone", B::WHAT);
                items
                    .into_iter()
                    .zip(replies)
                    .map(|(item, reply)| Pending { item, reply })
                    .collect()
            }
            Err(e) => {
                let why = e.to_string();
                for reply in replies {
                    let _gone = reply.send(Err(StoreError::NotCommitted(why.clone())));
                }
                Vec::new()
            }
        }
    };
    // This batch's items settle before the next batch is taken, which is what lets the
    // next one gather what arrives meanwhile; those alone run side by side.
    let mut running = JoinSet::new();
    for p in alone.into_iter().chain(again) {
        let store = store.clone();
        running.spawn(async move {
            let out = B::alone(&store, &p.item).await;
            let _gone = p.reply.send(out);
        });
    }
    while running.join_next().await.is_some() {}
}

/// Ids as a PostgreSQL array literal, for `col = ANY(CAST($n AS bigint[]))`: the planner
/// reaches those rows through the index. Joined to `json_to_recordset` alone (which it
/// takes for a hundred rows) it scanned the whole table instead, a cost that grew with it.
pub(crate) fn id_array(ids: impl IntoIterator<Item = i64>) -> String {
    let mut out = String::from("{");
    for (i, id) in ids.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&id.to_string());
    }
    out.push('}');
    out
}
