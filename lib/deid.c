#include "deid.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sha256.h"

int deid_key(Config *cfg, const char **key, FvErr *e)
{
    const char *k = cfg ? config_str(cfg, "deid.key", NULL) : NULL;
    if (!k || !*k)
        k = getenv("FVLM_DEID_KEY");
    if (!k || !*k)
        return err_set(e, FV_EUSAGE,
                       "no de-identification key: set FVLM_DEID_KEY in the environment or "
                       "deid.key in the config (any secret string, kept the same for one corpus)");
    if (strlen(k) < 8)
        return err_set(e, FV_EUSAGE, "the de-identification key is shorter than 8 characters");
    *key = k;
    return 0;
}

int deid_pseudonym(const char *key, const char *kind, const char *source_id, char out[65],
                   FvErr *e)
{
    Buf msg = {0};
    buf_printf(&msg, "%s:%s", kind, source_id);
    if (msg.failed) {
        buf_free(&msg);
        return err_set(e, FV_ENOMEM, "de-identification: out of memory");
    }
    unsigned char mac[32];
    hmac_sha256(key, strlen(key), msg.data, msg.len, mac);
    buf_free(&msg);
    sha256_to_hex(mac, out);
    return 0;
}
