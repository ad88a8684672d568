-- A tree's open flags, looked up by tree: every tree of a pull page asks for them (and the
-- household page, the review queue). Without it each lookup walked every flag of the county.

CREATE INDEX flags_tree ON flags(tree_id, decision);
