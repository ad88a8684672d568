-- Why a tree is gone and what it looked like: the reason the measurer chose when marking it
-- dead or felled (病虫害, 干旱, 建房修路 …) and the optional photo taken then (the dead tree or
-- its stump), kept with the status so the admin's review and the door plate can show them.

ALTER TABLE trees ADD COLUMN status_reason TEXT
    CHECK (status_reason IS NULL OR length(status_reason) BETWEEN 1 AND 40);
ALTER TABLE trees ADD COLUMN status_photo_sha256 TEXT
    CHECK (status_photo_sha256 IS NULL OR length(status_photo_sha256) = 64);
