-- A change of a few independent writes runs as one statement (each write a data-modifying
-- WITH query) instead of a transaction of several round trips. This function fails such a
-- statement, undoing all of it, when a write that must change a row changed none: `counts`
-- holds, in write order, the rows each such write changed; the error names the first write
-- that changed none by its position.
CREATE OR REPLACE FUNCTION passbind_require_rows(counts BIGINT[]) RETURNS INTEGER
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(counts, 1), 0) LOOP
        IF counts[i] = 0 THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PBW01',
                MESSAGE = format('passbind precondition %s', i - 1);
        END IF;
    END LOOP;
    RETURN 0;
END
$$;
