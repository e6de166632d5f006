//! Authentication: who is calling (`Actor`), how tokens are made and checked (`jwt`), and how
//! passwords are hashed without blocking the async executor (`password`); TOTP codes and
//! recovery codes (`totp`), TOTP secrets sealed at rest (`sealing`), and the OpenID Connect
//! relying party for external sign-in (`oidc`).

mod actor;
pub mod jwt;
pub mod oidc;
pub mod password;
pub mod sealing;
pub mod totp;

pub use actor::{Actor, Bearer};
pub use jwt::{Claims, JwtKeys};
pub use password::PasswordHasher;
