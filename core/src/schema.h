/*
 * The tables, as found (decision 008). The application may have created them (0.7.0's
 * migrations, a schema.rb, `create_table ..., force: true` in a test), in any of the
 * shapes 0.7.0 applications have, and may drop and recreate them at any moment. So the
 * core trusts no record of what it did before: it detects the tables in the first
 * transaction of a store, heals what is missing (creates tables, adds the columns it
 * needs, which live in the rows they describe), and does it again whenever one of its
 * statements finds a table or column missing.
 */
#ifndef AJ_SCHEMA_H
#define AJ_SCHEMA_H

#include "store.h"

/* Inside a transaction: detect the tables unless known. 0 when usable, AJ_ESTALE when
 * they need healing, AJ_ESCHEMA when a newer acidic_job wrote them. */
int aj_schema_ensure(aj_store *store);

/* Forget what was detected (a statement found the tables changed). */
void aj_schema_forget(aj_store *store);

/* Heal the tables in a transaction of their own (creating, adding columns, indexes,
 * the version row), then know them. */
int aj_schema_heal(aj_store *store);

/* Free the expanded statements. */
void aj_schema_free(aj_store *store);

#endif
