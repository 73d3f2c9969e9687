//! openraft's storage conformance suite, run against our log and state machine on real files.

use crate::{ApplyHook, LogStore, StateMachineStore, TypeConfig};
use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use std::sync::Arc;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log =
            LogStore::open(dir.path().join("wal"), dir.path().join("snap")).expect("log opens");
        let hook: ApplyHook = Arc::new(|_| {});
        let sm = StateMachineStore::open(Default::default(), hook, dir.path().join("snap"))
            .expect("state machine opens");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_pass_openraft_conformance_suite() {
    Suite::test_all(Builder)
        .await
        .expect("conformance suite passes");
}
