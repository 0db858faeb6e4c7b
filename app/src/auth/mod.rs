//! Passwords (argon2id off the async runtime) and tokens (HS256 JWTs).

mod current_user;
mod password;
mod token;

pub use current_user::{CurrentUser, Role};
pub use password::{PasswordError, Passwords, QueueFull, Ticket};
pub use token::{Claims, TokenError, Tokens};
