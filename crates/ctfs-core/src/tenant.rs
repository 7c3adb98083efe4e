//! Per-tenant causal domains: each tenant has its own clock, index and
//! state, so one tenant's facts never satisfy another's dependencies.

use std::collections::HashMap;

use crate::invariant::Invariant;
use crate::kernel::{Kernel, KernelConfig};

pub struct Tenants<I: Invariant + Clone> {
    template: I,
    config: KernelConfig,
    kernels: Vec<Kernel<I>>,
    by_name: HashMap<String, usize>,
}

impl<I: Invariant + Clone> Tenants<I> {
    pub fn new(template: I, config: KernelConfig) -> Result<Self, String> {
        config.validate()?;
        Ok(Tenants { template, config, kernels: Vec::new(), by_name: HashMap::new() })
    }

    /// The slot of tenant `name`, creating its domain on first use.
    pub fn slot(&mut self, name: &str) -> usize {
        if let Some(&i) = self.by_name.get(name) {
            return i;
        }
        let k = Kernel::try_new(self.template.clone(), self.config.clone()).expect("config validated in new");
        self.kernels.push(k);
        self.by_name.insert(name.to_owned(), self.kernels.len() - 1);
        self.kernels.len() - 1
    }

    pub fn get(&self, name: &str) -> Option<&Kernel<I>> {
        self.by_name.get(name).map(|&i| &self.kernels[i])
    }

    pub fn tenant(&mut self, name: &str) -> &mut Kernel<I> {
        let i = self.slot(name);
        &mut self.kernels[i]
    }

    pub fn by_slot(&mut self, slot: usize) -> Option<&mut Kernel<I>> {
        self.kernels.get_mut(slot)
    }

    pub fn len(&self) -> usize {
        self.kernels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kernels.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.by_name.keys().map(|s| s.as_str())
    }

    /// Tenant names in slot (creation) order.
    pub fn names_by_slot(&self) -> Vec<&str> {
        let mut v: Vec<(&usize, &String)> = self.by_name.iter().map(|(n, i)| (i, n)).collect();
        v.sort_unstable();
        v.into_iter().map(|(_, n)| n.as_str()).collect()
    }

    pub fn get_slot(&self, slot: usize) -> Option<&Kernel<I>> {
        self.kernels.get(slot)
    }

    /// The invariant and configuration every tenant starts from.
    pub fn template(&self) -> (&I, &KernelConfig) {
        (&self.template, &self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::fact::FactId;
    use crate::invariants::TotalSupply;
    use crate::kernel::CausalityMode;

    #[test]
    fn tenants_are_isolated() {
        let mut t = Tenants::new(TotalSupply::unbounded(0), KernelConfig::new(CausalityMode::Exact)).unwrap();
        let a = FactId([1; 32]);
        t.tenant("acme").admit(&a, &[], &TotalSupply::payload(5)).unwrap();
        // The same id is new for another tenant, and acme's fact is no dependency there.
        t.tenant("globex").admit(&a, &[], &TotalSupply::payload(7)).unwrap();
        let e = t.tenant("globex").admit(&FactId([2; 32]), &[FactId([9; 32])], &TotalSupply::payload(1)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::CausalityViolation);
        assert_eq!(TotalSupply::read(t.get("acme").unwrap().state()).balance, 5);
        assert_eq!(TotalSupply::read(t.get("globex").unwrap().state()).balance, 7);
        assert_eq!(t.slot("acme"), 0);
        assert_eq!(t.len(), 2);
    }
}
