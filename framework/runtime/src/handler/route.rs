//! Route strings: `serverType.handler.method` (§5.5, §6.1).

/// A parsed route; borrows from the route string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    pub server_type: &'a str,
    pub handler: &'a str,
    pub method: &'a str,
}

/// A route Pomelo would not dispatch, and what happens instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No `.` at all: the message is dropped without a response.
    #[error("route has no `.`; message dropped")]
    NoDot,
    /// Not exactly three parts: the request gets `{"code":500}`.
    #[error("route is not `serverType.handler.method`")]
    NotThreeParts,
    /// Method `constructor`: the session is kicked with reason `"attack"`.
    #[error("route method `constructor` is an attack")]
    Constructor,
}

impl<'a> Route<'a> {
    pub fn parse(route: &'a str) -> Result<Self, RouteError> {
        if !route.contains('.') {
            return Err(RouteError::NoDot);
        }
        let mut parts = route.split('.');
        let (Some(server_type), Some(handler), Some(method), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(RouteError::NotThreeParts);
        };
        if method == "constructor" {
            return Err(RouteError::Constructor);
        }
        Ok(Self {
            server_type,
            handler,
            method,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_routes_like_pomelo() {
        let r = Route::parse("chat.chatHandler.send").unwrap();
        assert_eq!(
            (r.server_type, r.handler, r.method),
            ("chat", "chatHandler", "send")
        );
        assert_eq!(Route::parse("nodot"), Err(RouteError::NoDot));
        assert_eq!(Route::parse("a.b"), Err(RouteError::NotThreeParts));
        assert_eq!(Route::parse("a.b.c.d"), Err(RouteError::NotThreeParts));
        assert_eq!(
            Route::parse("a.b.constructor"),
            Err(RouteError::Constructor)
        );
    }
}
