pub mod downstream;
