pub mod cluster_harness;
