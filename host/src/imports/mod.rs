pub mod connections;
pub mod keyvalue;
pub mod signing;
