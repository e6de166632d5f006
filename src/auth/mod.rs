//! Authentication: who is calling (`Actor`), how tokens are made and checked (`jwt`), and how
//! passwords are hashed without blocking the async executor (`password`).

mod actor;
pub mod jwt;
pub mod password;

pub use actor::{Actor, Bearer};
pub use jwt::{Claims, JwtKeys};
pub use password::PasswordHasher;
