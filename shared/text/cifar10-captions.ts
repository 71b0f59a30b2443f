// Class descriptions for CIFAR-10, written for this project: eight per class, in label order, each
// describing what the object looks like (shape, parts, colours, setting) rather than naming a template.
// Changing any text changes the embeddings, so bump CIFAR10_CAPTION_SET_NAME with it.

export const CIFAR10_CAPTION_SET_NAME = 'cifar10-v1';

export const CIFAR10_CAPTIONS: readonly (readonly string[])[] = Object.freeze([
  // airplane
  [
    'A passenger jet with long swept wings and a tall tail fin, flying through a clear blue sky.',
    'A white airliner parked on the runway, its engines hanging beneath the wings and a row of small windows along the fuselage.',
    'A small propeller plane seen from below, a dark silhouette with straight wings against pale clouds.',
    'A military fighter jet with a pointed nose and angled wings, painted in grey camouflage.',
    'An aircraft climbing after takeoff with its landing gear still down, leaving the airport behind.',
    'A tiny blurry plane in a mostly blue or grey photo, its wings spread out like a cross.',
    'A large jet taxiing on the tarmac near the terminal, with a long narrow body and a painted tail.',
    'A light aircraft banking in the air, sunlight glinting off its metal skin and spinning propeller.',
  ],
  // automobile
  [
    'A red sedan parked on the street, with four wheels, shiny paint and glass windows on every side.',
    'A small family car seen from the front, its headlights and grille forming a face above the bumper.',
    'A sleek sports car with a low body and wide tires, driving fast along a paved road.',
    'A compact hatchback in a parking lot, photographed from the side so both doors and wheels show.',
    'A passenger car with a glossy blue body reflecting the sky, parked beside a curb.',
    'An old classic car with chrome trim and round headlights, polished for a show.',
    'A white car on a highway, its windshield and side mirrors visible in a tiny low resolution photo.',
    'A four door vehicle for carrying a few people, with a hood, a trunk and black rubber tires.',
  ],
  // bird
  [
    'A small songbird perched on a thin branch, with a short beak, bright eyes and folded wings.',
    'A bird with brown and white speckled feathers standing on the grass, pecking for seeds.',
    'An ostrich with a long neck and long bare legs walking across dry open ground.',
    'A colorful parrot with a curved beak and vivid green, red and yellow plumage.',
    'A seabird gliding low over the water with its wings stretched wide against the sky.',
    'A little feathered animal with a round body and thin legs, sitting on a fence or a twig.',
    'An owl or hawk with sharp talons and a hooked beak, staring straight at the camera.',
    'A blurry small photo of a bird in flight, a dark body with flapping wings over green leaves.',
  ],
  // cat
  [
    'A tabby cat with striped grey fur, pointed ears and long whiskers, sitting on a windowsill.',
    'A fluffy kitten curled up asleep on a soft blanket, its tail wrapped around its body.',
    'A black cat with bright yellow eyes staring at the camera from a dark corner.',
    'A ginger house pet stretching on the carpet, showing its paws and small pink nose.',
    'A close view of a feline face with green eyes, a small muzzle and white whiskers.',
    'A white and orange cat lying on a sofa, relaxed and looking slightly away.',
    'A small furry animal with triangular ears and slit pupils, crouching as if ready to pounce.',
    'A grey cat sitting upright indoors, its long tail curled neatly around its front paws.',
  ],
  // deer
  [
    'A deer standing in a forest clearing, with a slender brown body, long legs and large ears.',
    'A stag with tall branching antlers, raising its head alert in a grassy meadow.',
    'A young fawn with white spots on its tan coat, hiding among tall grass.',
    'A wild animal with a reddish brown coat grazing at the edge of the woods at dusk.',
    'Several does walking through snow, their thin legs and short tails easy to see.',
    'A deer in a small photo, a brown shape against green trees with its head turned sideways.',
    'A graceful hoofed animal with a white tail, leaping over a fallen log in the woods.',
    'A male elk with wide antlers standing alone in a field of dry golden grass.',
  ],
  // dog
  [
    'A golden retriever with floppy ears and a wagging tail, running across a green lawn.',
    'A small puppy with brown and white fur sitting on the floor, looking up with big eyes.',
    'A dog with its tongue hanging out and a red collar, panting happily after a walk.',
    'A black labrador lying on the grass, holding a tennis ball in its mouth.',
    'A close view of a furry snout with a wet black nose and dark friendly eyes.',
    'A shaggy terrier standing on a path, its coat a mix of grey and tan.',
    'A loyal pet on a leash, trotting beside its owner along a sidewalk.',
    'A fluffy white dog with pointed ears and a curled tail, photographed indoors.',
  ],
  // frog
  [
    'A green frog sitting on a lily pad, with bulging eyes and smooth wet skin.',
    'A brown toad with bumpy warty skin resting on damp soil among fallen leaves.',
    'A small amphibian with long folded back legs, ready to jump into the pond.',
    'A tree frog with bright red eyes and sticky toe pads clinging to a leaf.',
    'A speckled frog half hidden in mud, its wide mouth and round eyes poking out.',
    'A close view of a frog head with golden eyes and a pale throat.',
    'A green and brown creature crouched on a stone near the water, hard to spot against the ground.',
    'A slimy amphibian sitting in shallow water, its skin patterned with dark blotches.',
  ],
  // horse
  [
    'A brown horse with a long flowing mane and tail, galloping across an open field.',
    'A white horse standing in a paddock behind a wooden fence, head lowered to graze.',
    'A rider on a saddled horse jumping a fence at an equestrian show.',
    'A chestnut mare and her foal standing together in a green pasture.',
    'A tall animal with a long face, pointed ears and strong muscular legs ending in hooves.',
    'A dark stallion with a shiny coat, wearing a leather bridle and reins.',
    'A horse pulling a wooden cart along a dirt road in the countryside.',
    'A small photo of a horse seen from the side, its long body, neck and four legs clearly outlined.',
  ],
  // ship
  [
    'A large cargo ship loaded with stacked containers, sailing across the open sea.',
    'A white cruise ship with many decks and rows of windows, docked in a harbor.',
    'A sailboat with tall white sails leaning in the wind on blue water.',
    'A grey navy vessel with guns and antennas, cutting through the waves.',
    'A fishing boat moored at a pier, its hull painted red and blue.',
    'An old wooden sailing vessel with three masts and ropes, anchored in a calm bay.',
    'A long hull on the horizon, a dark shape between the grey sky and the water.',
    'A ferry leaving port with a white wake trailing behind it across the harbor.',
  ],
  // truck
  [
    'A big delivery truck with a boxy cargo area and a tall cab, parked by the road.',
    'A red fire engine with ladders on top and shiny chrome details.',
    'A semi trailer rig hauling freight along the highway on many large wheels.',
    'A pickup truck with an open bed in the back, driving on a dirt road.',
    'A heavy dump truck with a tilting bed full of gravel at a construction site.',
    'A white lorry with a long rectangular trailer, seen from the side in a small photo.',
    'A tow truck with a hook and flashing lights waiting on the roadside.',
    'A large vehicle with a square front grille, big mirrors and high windows above the wheels.',
  ],
].map((captions) => Object.freeze(captions)));
