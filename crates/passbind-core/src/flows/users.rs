//! Users and their credentials: read, revoke one credential, erase a user.

use crate::engine::{rfc3339, Engine};
use crate::error::CoreError;
use crate::machine::{self, effective_state, Event};
use crate::model::*;
use passbind_audit::Actor;
use passbind_proto::users::{CredentialView, UserView};

impl Engine {
    /// A user's credentials and whether a biometric token is held (never the token).
    pub async fn user_view(&self, external_user_id: &str) -> Result<UserView, CoreError> {
        crate::validate::external_user_id(external_user_id)?;
        let user = self
            .store
            .user_by_external_id(external_user_id)
            .await?
            .ok_or(CoreError::UserNotFound)?;
        let has_ebt = self.store.ebt(&user.id).await?.is_some();
        let credentials = self
            .store
            .credentials_of_user(&user.id)
            .await?
            .into_iter()
            .map(|c| CredentialView {
                credential_id: c.credential_id,
                created_at: rfc3339(c.created_at),
                last_used_at: c.last_used_at.map(rfc3339),
                revoked_at: c.revoked_at.map(rfc3339),
                aaguid: c.aaguid,
                backup_eligible: c.backup_eligible,
                backed_up: c.backed_up,
                transports: c.transports,
                device_label: c.device_label,
                sign_count: c.sign_count,
            })
            .collect();
        Ok(UserView {
            external_user_id: user.external_user_id,
            created_at: rfc3339(user.created_at),
            has_biometric_reference: has_ebt,
            erased_at: user.erased_at.map(rfc3339),
            credentials,
        })
    }

    /// Revokes one of the user's credentials: it can no longer sign in or step up.
    pub async fn revoke_credential(
        &self,
        actor: &Actor,
        external_user_id: &str,
        credential_id: &str,
    ) -> Result<UserView, CoreError> {
        let r = self
            .revoke_credential_inner(actor, external_user_id, credential_id)
            .await;
        self.audited(actor, "revoke_credential", None, r).await
    }

    async fn revoke_credential_inner(
        &self,
        actor: &Actor,
        external_user_id: &str,
        credential_id: &str,
    ) -> Result<UserView, CoreError> {
        let user = self.active_user(external_user_id).await?;
        if crate::crypto::b64url_decode(credential_id).is_none() {
            return Err(CoreError::CredentialNotFound);
        }
        match self.store.credential(credential_id).await? {
            Some(c) if c.user_id == user.id && c.revoked_at.is_none() => {}
            _ => return Err(CoreError::CredentialNotFound),
        }
        match self
            .commit(
                actor,
                vec![Write::RevokeCredential {
                    credential_id: credential_id.to_owned(),
                    at: self.now(),
                }],
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::NotFound)) => {
                return Err(CoreError::CredentialNotFound)
            }
            Err(e) => return Err(e.into()),
        }
        self.user_view(external_user_id).await
    }

    /// Erases a user: crypto-shreds the biometric token (its wrapped data key is destroyed),
    /// revokes every credential, cancels live sessions and marks the user erased. The
    /// external id cannot be enrolled again.
    pub async fn erase_user(
        &self,
        actor: &Actor,
        external_user_id: &str,
    ) -> Result<UserView, CoreError> {
        let r = self.erase_user_inner(actor, external_user_id).await;
        self.audited(actor, "erase_user", None, r).await
    }

    async fn erase_user_inner(
        &self,
        actor: &Actor,
        external_user_id: &str,
    ) -> Result<UserView, CoreError> {
        let user = self.active_user(external_user_id).await?;
        let now = self.now();
        let mut writes = vec![
            Write::DeleteEbt {
                user_id: user.id.clone(),
            },
            Write::RevokeUserCredentials {
                user_id: user.id.clone(),
                keep: None,
                at: now,
            },
            Write::EraseCredentialLabels {
                user_id: user.id.clone(),
            },
            Write::MarkUserErased {
                user_id: user.id.clone(),
                at: now,
            },
        ];
        for s in self.store.sessions_of_user(&user.id, 1000).await? {
            let state = effective_state(s.state, s.expires_at, now);
            if let Ok(to) = machine::next(s.flow, state, Event::Cancel) {
                writes.push(Write::UpdateSession {
                    record: SessionRecord {
                        state: to,
                        version: s.version + 1,
                        updated_at: now,
                        ..s.clone()
                    },
                    expected_version: s.version,
                });
            }
        }
        self.commit(actor, writes).await?;
        tracing::info!(user = %self.user_ref(&user.external_user_id), "user erased");
        self.user_view(external_user_id).await
    }
}
