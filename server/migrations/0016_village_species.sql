-- The species a village actually has (parameter set sipang-2026.2): Chinese tallow,
-- metasequoia, paulownia, willow, elm, black locust, and "other broadleaf / other conifer"
-- for a tree whose species is not in the list (generic route, largest uncertainty).

INSERT INTO species (id, scientific_name, name_zh) VALUES
    ('triadica_sebifera', 'Triadica sebifera', '乌桕'),
    ('metasequoia_glyptostroboides', 'Metasequoia glyptostroboides', '水杉'),
    ('paulownia_spp', 'Paulownia spp.', '泡桐'),
    ('salix_spp', 'Salix spp.', '柳树'),
    ('ulmus_spp', 'Ulmus spp.', '榆树'),
    ('robinia_pseudoacacia', 'Robinia pseudoacacia', '刺槐'),
    ('other_broadleaf', 'Angiospermae (other)', '其他阔叶'),
    ('other_conifer', 'Coniferae (other)', '其他针叶');
