"""Policy layer: versioned threshold policies with diff, approvals, apply and rollback
(:mod:`.versions`), the policy YAML format (:mod:`.policy_yaml`), who may do what
(:mod:`.identity`), promtool unit tests from a version's history (:mod:`.rule_tests`) and
notifications (:mod:`.notify`). The audit chain these write to lives with the store's transactions
(:mod:`core.data.store.audit`)."""
