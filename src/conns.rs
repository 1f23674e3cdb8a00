//! TCP connections per client address, counted as they are accepted and released when they
//! close (the count's guard lives in the connection's data, which is dropped with it). A
//! connection over the cap is answered 429 on every request and closed, so one address cannot
//! hold the server's connections open: request heads must arrive within actix's request
//! timeout, and bodies within the routes' own.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError};
use podium_actors::domain::error::ClientError;

/// Connections per address. A std mutex: held for a map update per accepted connection.
#[derive(Clone, Default)]
pub struct PerIp {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in [`PerIp`], released on drop.
pub struct Place {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Marks a connection past its address's cap.
pub struct OverCap;

impl PerIp {
    /// Counts a new connection from `ip`; answers its place and whether it is past `cap`.
    pub fn admit(&self, ip: IpAddr, cap: usize) -> (Place, bool) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_default();
        *n += 1;
        let over = *n > cap;
        let place = Place {
            ip,
            counts: self.counts.clone(),
        };
        (place, over)
    }
}

/// Middleware: a request on a connection past its address's cap is refused and the
/// connection closed.
pub async fn refuse_over_cap(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if req.conn_data::<OverCap>().is_some() {
        podium_actors::telemetry::connection_refused("too_many_connections_for_ip");
        let mut res = ClientError::TooManyConnectionsForIp.error_response();
        res.head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
        return Ok(req.into_response(res).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}
