pub mod record_batch;
