#!/usr/bin/env bash
# Takes the screenshots of the staff pages shown in docs/pages.md: starts crm-server on
# a throw-away data directory, fills it with sample customers through the API, and has
# headless Chromium photograph each page.
#
#   cargo build -p crm-server && bash docs/screenshots.sh [path/to/crm-server]
#
# Needs curl, chromium (Debian: apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:-target/debug/crm-server}
out=docs
data=$(mktemp -d)
profile=$(mktemp -d)
log=$(mktemp)

"$server" --addr 127.0.0.1:0 --data "$data" >"$log" 2>/dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$data" "$profile" "$log"' EXIT
for _ in $(seq 50); do grep -q http:// "$log" && break; sleep 0.1; done
base=$(grep -o 'http://[0-9.:]*' "$log")

create() { curl -fsS -X POST "$base/api/create_customer" -d "$1" | sed 's/.*"idClient":"\([^"]*\)".*/\1/'; }
first=$(create '{"Nom":"Bloggs","Prenom":"Jacquie","email":"jacquie.bloggs@mimi.com","Credit":420,"Compte":"BKN1CST53","CarteFid":33}')
create '{"name":"Jon","last_name":"Doe","sexe":"h","age":23,"mail":"jon.doe@mail.com","phone":"+33638614907"}' >/dev/null
i=0
for name in "Martin Élise" "Bernard Lucas" "Dubois Chloé" "Thomas Hugo" "Robert Léa" "Richard Louis" \
  "Petit Manon" "Durand Jules" "Leroy Camille" "Moreau Arthur" "Simon Inès" "Laurent Gabriel"; do
  i=$((i + 1))
  nom=${name%% *}; prenom=${name#* }
  create "{\"Nom\":\"$nom\",\"Prenom\":\"$prenom\",\"email\":\"$(echo "$prenom.$nom" | iconv -f utf-8 -t ascii//TRANSLIT | tr 'A-Z' 'a-z')@exemple.fr\",\"Credit\":$((i * 1234 % 9000)),\"Compte\":\"FR76-00$i\",\"CarteFid\":$((100 + i))}" >/dev/null
done

# The first customer's tickets, a credit and a scheduled payment, for its page.
curl -fsS -X POST "$base/api/v1/tickets" -d "{\"origin\":\"magasin\",\"tickets\":[
  {\"id\":4101,\"date\":\"2026-09-14T10:12:00Z\",\"prix\":4240,\"client\":\"$first\",\"modePaiement\":\"CARD\",
   \"articles\":[{\"codeProduit\":\"X1-0\",\"prixAvant\":800,\"prixApres\":400,\"promo\":50,\"quantity\":2},
                 {\"codeProduit\":\"X1-9\",\"prixAvant\":3440,\"prixApres\":3440,\"promo\":0,\"quantity\":1}]},
  {\"id\":4388,\"date\":\"2026-10-21T17:45:00Z\",\"prix\":12990,\"client\":\"$first\",\"modePaiement\":\"CASH\",
   \"articles\":[{\"codeProduit\":\"B7-2\",\"prixAvant\":12990,\"prixApres\":12990,\"promo\":0,\"quantity\":1}]}]}" >/dev/null
curl -fsS -X POST "$base/api/credit" -d '{"Tickets":[{"carteFid":33,"Montant":2600}]}' >/dev/null
curl -fsS -X POST "$base/api/allow_credit" -d "{\"idClient\":\"$first\",\"Montant\":36000,\"Date\":\"2026-12-06\"}" >/dev/null

shoot() { # file width height path
  chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
    --no-first-run --hide-scrollbars --user-data-dir="$profile" --window-size="$2,$3" \
    --screenshot="$out/$1" "$base$4" 2>/dev/null
}
shoot pages-home.png 1440 900 "/api?import=created%3A12%2Cupdated%3A2%2Cunchanged%3A0"
shoot pages-import.png 1440 900 /api/update_db
shoot pages-customer.png 1440 1600 "/api/customers/$first"
shoot pages-home-phone.png 390 844 "/api?sort=-Credit"
echo "screenshots written to $out/"
