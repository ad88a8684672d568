-- The dashboards' read side (docs/dashboards.md): indexes for their aggregates, and
-- `payout_balances`, each household's running accrued / paid / pending fen, kept by
-- triggers on the payouts tables (0007) so a county's figures need no scan of every
-- accrual. It is derived data: the accruals and settlements stay the record, and
-- tests/test_dashboards.py checks the two agree.

CREATE INDEX issuance_households_household ON issuance_households(household_id, grams);
CREATE INDEX trees_household_status ON trees(household_id, status);
CREATE INDEX orders_paid ON orders(paid_at) WHERE paid_at IS NOT NULL;
CREATE INDEX tonnes_issuance_status ON tonnes(issuance_id, status);
CREATE INDEX accruals_county_day ON accruals(county_id, accrued_on, household_id, amount_fen);
CREATE INDEX settlements_county_paid ON settlements(county_id, status, recorded_at, amount_fen);

CREATE TABLE payout_balances (
    household_id INTEGER PRIMARY KEY REFERENCES households(id),
    village_id INTEGER NOT NULL REFERENCES villages(id),
    county_id INTEGER NOT NULL REFERENCES counties(id),
    accrued_fen INTEGER NOT NULL DEFAULT 0,
    paid_fen INTEGER NOT NULL DEFAULT 0,
    pending_fen INTEGER NOT NULL DEFAULT 0,
    last_paid_at TEXT
);
CREATE INDEX payout_balances_county
    ON payout_balances(county_id, village_id, accrued_fen, paid_fen, pending_fen);
CREATE INDEX payout_balances_owed ON payout_balances(county_id, (accrued_fen - paid_fen));
CREATE INDEX payout_balances_village ON payout_balances(village_id);

INSERT INTO payout_balances (household_id, village_id, county_id, accrued_fen)
SELECT household_id, village_id, county_id, sum(amount_fen) FROM accruals
GROUP BY household_id, village_id, county_id;

UPDATE payout_balances SET
    paid_fen = (SELECT coalesce(sum(amount_fen), 0) FROM settlements s
                WHERE s.household_id = payout_balances.household_id AND s.status = 'paid'),
    pending_fen = (SELECT coalesce(sum(amount_fen), 0) FROM settlements s
                   WHERE s.household_id = payout_balances.household_id
                     AND s.status = 'pending'),
    last_paid_at = (SELECT max(recorded_at) FROM settlements s
                    WHERE s.household_id = payout_balances.household_id AND s.status = 'paid');

CREATE TRIGGER payout_balances_accrual AFTER INSERT ON accruals
BEGIN
    INSERT INTO payout_balances (household_id, village_id, county_id, accrued_fen)
    VALUES (NEW.household_id, NEW.village_id, NEW.county_id, NEW.amount_fen)
    ON CONFLICT (household_id) DO UPDATE SET accrued_fen = accrued_fen + NEW.amount_fen;
END;

CREATE TRIGGER payout_balances_settlement AFTER INSERT ON settlements
BEGIN
    INSERT INTO payout_balances (household_id, village_id, county_id)
    VALUES (NEW.household_id, NEW.village_id, NEW.county_id)
    ON CONFLICT (household_id) DO NOTHING;
    UPDATE payout_balances SET
        pending_fen = pending_fen + CASE WHEN NEW.status = 'pending' THEN NEW.amount_fen ELSE 0 END,
        paid_fen = paid_fen + CASE WHEN NEW.status = 'paid' THEN NEW.amount_fen ELSE 0 END,
        last_paid_at = CASE WHEN NEW.status = 'paid' THEN NEW.recorded_at ELSE last_paid_at END
    WHERE household_id = NEW.household_id;
END;

CREATE TRIGGER payout_balances_settlement_recorded AFTER UPDATE OF status ON settlements
WHEN NEW.status != OLD.status
BEGIN
    UPDATE payout_balances SET
        pending_fen = pending_fen
            - CASE WHEN OLD.status = 'pending' THEN OLD.amount_fen ELSE 0 END
            + CASE WHEN NEW.status = 'pending' THEN NEW.amount_fen ELSE 0 END,
        paid_fen = paid_fen
            - CASE WHEN OLD.status = 'paid' THEN OLD.amount_fen ELSE 0 END
            + CASE WHEN NEW.status = 'paid' THEN NEW.amount_fen ELSE 0 END,
        last_paid_at = CASE WHEN NEW.status = 'paid' THEN NEW.recorded_at ELSE last_paid_at END
    WHERE household_id = NEW.household_id;
END;
