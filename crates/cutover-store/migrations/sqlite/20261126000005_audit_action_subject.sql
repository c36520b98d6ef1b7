-- cutover store schema v5: "what ran at time T" replays one environment's switches
-- (`action = 'deployment.switch' AND subject = 'env:<name>'`) and a deployment's proofs; with
-- 1,000,000 audit events the (action, seq) and (subject, seq) indexes alone leave a long scan.
CREATE INDEX audit_action_subject ON audit (action, subject, seq);
