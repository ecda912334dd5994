pub mod connections;
pub mod keyvalue;
