//! Connection caps: how many connections the host takes in all and from one client address.
//!
//! A handshake takes a permit before on-connect runs, and the connection holds it until its
//! session ends, so the caps count connections being set up as well as open ones, and no
//! interleaving of handshakes can overshoot them.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

/// Why a handshake was refused a permit.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The host has as many connections as it takes (503).
    HostFull,
    /// This client address has as many connections as one address may have (429).
    TooManyFromAddress,
}

#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_ip: usize,
    total: AtomicUsize,
    per_ip: DashMap<IpAddr, usize>,
}

/// A place for one connection, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            total: AtomicUsize::new(0),
            per_ip: DashMap::new(),
        }
    }

    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        if self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_total).then_some(n + 1)
            })
            .is_err()
        {
            return Err(Refusal::HostFull);
        }
        // Every entry counts a permit that exists, so a refusal leaves the map as it was.
        let admitted = match self.per_ip.entry(ip) {
            Entry::Occupied(count) if *count.get() >= self.max_per_ip => false,
            Entry::Occupied(mut count) => {
                *count.get_mut() += 1;
                true
            }
            Entry::Vacant(_) if self.max_per_ip == 0 => false,
            Entry::Vacant(slot) => {
                slot.insert(1);
                true
            }
        };
        if !admitted {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::TooManyFromAddress);
        }
        Ok(Permit {
            admission: self.clone(),
            ip,
        })
    }

    /// Connections holding a permit now.
    pub fn admitted(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let admission = &self.admission;
        admission.per_ip.remove_if_mut(&self.ip, |_, count| {
            *count -= 1;
            *count == 0
        });
        admission.total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn caps_one_address() {
        let admission = Arc::new(Admission::new(10, 2));
        let _a = admission.admit(ip(1)).unwrap();
        let _b = admission.admit(ip(1)).unwrap();
        assert_eq!(
            admission.admit(ip(1)).unwrap_err(),
            Refusal::TooManyFromAddress
        );
        assert!(admission.admit(ip(2)).is_ok());
    }

    #[test]
    fn caps_the_host_and_gives_places_back() {
        let admission = Arc::new(Admission::new(2, 10));
        let a = admission.admit(ip(1)).unwrap();
        let _b = admission.admit(ip(2)).unwrap();
        assert_eq!(admission.admit(ip(3)).unwrap_err(), Refusal::HostFull);
        drop(a);
        let _c = admission.admit(ip(3)).unwrap();
        assert_eq!(admission.admitted(), 2);
    }

    #[test]
    fn a_cap_of_zero_refuses_every_address_and_remembers_none() {
        let admission = Arc::new(Admission::new(10, 0));
        for last in 1..=3 {
            assert_eq!(
                admission.admit(ip(last)).unwrap_err(),
                Refusal::TooManyFromAddress
            );
        }
        assert!(admission.per_ip.is_empty());
        assert_eq!(admission.admitted(), 0);
    }

    #[test]
    fn forgets_addresses_with_no_connections() {
        let admission = Arc::new(Admission::new(10, 10));
        drop(admission.admit(ip(1)).unwrap());
        assert!(admission.per_ip.is_empty());
    }
}
