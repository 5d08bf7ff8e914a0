//! The one place routes are declared: [`Routes`] builds the axum router and records each
//! `(method, path)` it serves, so the OpenAPI drift test compares the real table with the
//! document instead of a second hand-kept list.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};

use crate::state::AppState;

/// A router under construction and the table of what it serves.
#[derive(Default)]
pub struct Routes {
    router: Router<AppState>,
    table: Vec<(Method, &'static str)>,
}

impl Routes {
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `GET path` with `handler`.
    pub fn get<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::GET, MethodFilter::GET, path, handler)
    }

    /// Serves `POST path` with `handler`.
    pub fn post<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::POST, MethodFilter::POST, path, handler)
    }

    /// Serves `PUT path` with `handler`.
    pub fn put<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::PUT, MethodFilter::PUT, path, handler)
    }

    /// Serves `DELETE path` with `handler`.
    pub fn delete<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
    ) -> Self {
        self.on(Method::DELETE, MethodFilter::DELETE, path, handler)
    }

    fn on<H: Handler<T, AppState>, T: 'static>(
        mut self,
        method: Method,
        filter: MethodFilter,
        path: &'static str,
        handler: H,
    ) -> Self {
        // axum merges the method routers of one path, so GET and PUT of a path may be
        // declared apart.
        self.router = self.router.route(path, on(filter, handler));
        self.table.push((method, path));
        self
    }

    /// Both tables in one.
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    /// What is served: `(method, path)` in axum's path syntax (`/sso/links/{id}`), which is
    /// OpenAPI's too.
    pub fn table(&self) -> &[(Method, &'static str)] {
        &self.table
    }

    /// The router.
    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}
