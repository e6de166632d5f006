//! Authentication: who is calling (`Actor`), how tokens are made and checked (`jwt`), and how
//! passwords are hashed without blocking the async executor (`password`); TOTP codes and
//! recovery codes (`totp`), and TOTP secrets sealed at rest (`sealing`).

mod actor;
pub mod jwt;
pub mod password;
pub mod sealing;
pub mod totp;

pub use actor::{Actor, Bearer};
pub use jwt::{Claims, JwtKeys};
pub use password::PasswordHasher;
