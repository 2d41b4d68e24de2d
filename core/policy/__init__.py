"""Policy layer: versioned threshold policies with diff, approvals, apply and rollback
(:mod:`.versions`), the policy YAML format (:mod:`.policy_yaml`), and who may do what
(:mod:`.identity`). The audit chain these write to lives with the store's transactions
(:mod:`core.data.store.audit`)."""
